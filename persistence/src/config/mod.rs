//! Configuration: named databases, their pools and resilience settings, and
//! cache policy — from a YAML file (or TOML/JSON), `${VAR}` interpolation,
//! environment overrides and profiles — plus environment detection when no
//! file is given.
//!
//! ```yaml
//! databases:
//!   main:
//!     kind: postgres
//!     url: ${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/app}
//!     pool: { max_connections: 20, acquire_timeout: 5s }
//!     replicas: ["${REPLICA_URL:-postgres://postgres@127.0.0.1:5433/app}"]
//!     backup: ${BACKUP_URL:-postgres://postgres@127.0.0.1:5434/app}
//!     failover: { check_interval: 1s, check_timeout: 500ms, read_from_replicas: true }
//!     timeout: 5s
//!     retry: { max_attempts: 3, base_delay: 20ms, max_delay: 1s, resolve_writes: true }
//!     breaker: { failure_threshold: 5, open_for: 10s }
//!   catalog: { kind: mongo, url: "${MONGODB_URL}", database: catalog }
//!   cache: { kind: redis, url: "${REDIS_URL:-redis://127.0.0.1:6379}" }
//!   # or a Redis Cluster: some of its nodes, instead of `url`
//!   # cache: { kind: redis, cluster: ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"] }
//!   local: { kind: sqlite, url: "sqlite://local.db?mode=rwc" }
//! cache:
//!   default: { ttl: 5m, negative_ttl: 30s, l2: cache }
//!   entities:
//!     users: { ttl: 1m, l2: cache }
//!     products: { ttl: 1m, l2: cache, fail_safe: { max_age: 1h, throttle: 30s }, soft_timeout: 100ms, hard_timeout: 2s, eager_refresh: 0.8 }
//!     audit_rows: { ttl: 1m, l2: cache, backplane: false }
//!     hot_items: { ttl: 1m, l2: cache, lease: { ttl: 2s } }   # or lease: true (3s)
//!   backplane: true          # default with L2: cross-instance L1 invalidation
//!   heartbeat: 250ms
//!   heartbeat_timeout: 750ms
//!   degraded_ttl: 1s
//!   max_queued_invalidations: 10000
//! metrics: { slow_threshold: 500ms, leak_threshold: 30s, pool_warn_utilization: 85 }
//! profiles:
//!   production:
//!     databases: { main: { pool: { max_connections: 50 } } }
//! ```
//!
//! Layers, lowest first: the file (after interpolation), the selected
//! profile's section (`PERSISTENCE_ENV`, default `development`), then
//! environment variables `PERSISTENCE__DATABASES__MAIN__URL=...` (double
//! underscore separates keys). Unknown keys are rejected; every error names
//! the key path and, for a file, the line. URLs and passwords are
//! [`Secret`]s: never shown by `Debug`, `Display` or [`PersistenceConfig::describe`].
//! The keys are listed once, in [`keys`].

mod detect;
pub mod keys;
mod load;
mod read_policy;
mod secret;
mod tenancy;
mod validate;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use persistence_core::layer::{BreakerConfig, RetryConfig};
use serde::{Deserialize, Serialize};

pub use detect::{Detection, Probe, detect};
pub use load::{ConfigLoader, interpolate};
pub use read_policy::{FailSafeSettings, Fraction, LeaseOptions, LeaseSettings};
pub use secret::Secret;
pub use tenancy::{TenancyConfig, TenancyStrategy};

/// The backend of a named database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    /// PostgreSQL (`persistence-postgres`).
    Postgres,
    /// SQLite (`persistence-postgres`), the embedded relational default.
    Sqlite,
    /// MongoDB (`persistence-mongo`).
    Mongo,
    /// Redis, for the cache layer's L2 and sessions (`persistence-cache`).
    Redis,
    /// The in-memory store, the embedded document default.
    Memory,
}

impl DatabaseKind {
    /// The cargo feature of `persistence` this kind needs (`None`: always there).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            DatabaseKind::Postgres => Some("postgres"),
            DatabaseKind::Sqlite => Some("sqlite"),
            DatabaseKind::Mongo => Some("mongo"),
            DatabaseKind::Redis => Some("redis"),
            DatabaseKind::Memory => None,
        }
    }

    /// Whether this build of `persistence` has this kind's feature.
    pub fn is_compiled(self) -> bool {
        match self {
            DatabaseKind::Postgres => cfg!(feature = "postgres"),
            DatabaseKind::Sqlite => cfg!(feature = "sqlite"),
            DatabaseKind::Mongo => cfg!(feature = "mongo"),
            DatabaseKind::Redis => cfg!(feature = "redis"),
            DatabaseKind::Memory => true,
        }
    }

    /// `Ok` when this kind is compiled in, else a `Config` error naming the
    /// database `name` and the missing feature.
    pub fn check_compiled(self, name: &str) -> persistence_core::Result<()> {
        match self.feature() {
            Some(feature) if !self.is_compiled() => Err(persistence_core::Error::config(format!(
                "database `{name}` is kind {}, but persistence was built without the `{feature}` feature",
                self.name()
            ))),
            _ => Ok(()),
        }
    }

    /// The OpenTelemetry `db.system` of this kind, for the tracing layer.
    pub fn db_system(self) -> persistence_core::layer::DbSystem {
        use persistence_core::layer::DbSystem;
        match self {
            DatabaseKind::Postgres => DbSystem::Postgresql,
            DatabaseKind::Sqlite => DbSystem::Sqlite,
            DatabaseKind::Mongo => DbSystem::Mongodb,
            DatabaseKind::Redis => DbSystem::Redis,
            DatabaseKind::Memory => DbSystem::Memory,
        }
    }

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            DatabaseKind::Postgres => "postgres",
            DatabaseKind::Sqlite => "sqlite",
            DatabaseKind::Mongo => "mongo",
            DatabaseKind::Redis => "redis",
            DatabaseKind::Memory => "memory",
        }
    }
}

/// `pool.tenant_statements`: how schema-per-tenant repositories name their
/// tables (PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatementsConfig {
    /// Schema-qualified names, one round trip per call.
    Qualified,
    /// Bare names under a transaction-local `search_path`.
    SearchPath,
}

/// `pool.tenant_routing`: how a tenant's calls choose among the
/// `tenant_shards` groups (PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantRoutingConfig {
    /// Always the tenant's own group (default).
    Home,
    /// The own group, unless the tenant alone has more calls in flight
    /// than a group has connections: then the least busy group.
    Spill,
}

/// Connection pool settings (all optional: the backend's defaults apply).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Most connections.
    pub max_connections: Option<u32>,
    /// Connections kept open.
    pub min_connections: Option<u32>,
    /// How long to wait for a free connection.
    #[serde(default, with = "humantime_serde")]
    pub acquire_timeout: Option<Duration>,
    /// Close connections idle this long.
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// Recycle connections older than this (PostgreSQL: a recycled
    /// connection gives back its server-side prepared statements and
    /// catalog caches, which grow with the tenant schemas it touched).
    #[serde(default, with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
    /// Prepared statements kept per connection (relational backends;
    /// default 100, at least 1). Schema-per-tenant needs about
    /// `tenants per connection x statement shapes` (see `tenant_shards`).
    pub statement_cache_capacity: Option<usize>,
    /// Tenant-affine routing for schema-per-tenant on PostgreSQL: the pool
    /// is split into this many groups of `max_connections / tenant_shards`
    /// connections and each tenant uses the group its name hashes to, so a
    /// connection's statement and catalog caches stay bounded (default 1).
    pub tenant_shards: Option<u32>,
    /// With `tenant_shards`: `home` (default, a tenant only ever uses its
    /// group) or `spill` (a tenant that alone fills its group sends further
    /// calls to the least busy group, so a single or hot tenant can use the
    /// whole pool; needs `tenant_shards` of at least 2). See the README,
    /// "Tenancy at scale".
    pub tenant_routing: Option<TenantRoutingConfig>,
    /// How a tenant's repositories name their tables on PostgreSQL:
    /// `qualified` (default, `"acme"."orders"`) or `search_path` (bare
    /// names in a transaction with `SET LOCAL search_path`: one statement
    /// text for all tenants). See the README, "Tenancy at scale".
    pub tenant_statements: Option<TenantStatementsConfig>,
    /// Server-side statement timeout.
    #[serde(default, with = "humantime_serde")]
    pub statement_timeout: Option<Duration>,
    /// Application name reported to the server.
    pub application_name: Option<String>,
}

/// The `retry` section was this copy of [`RetryConfig`] (same keys).
#[deprecated(note = "use persistence_core::layer::RetryConfig, which the `retry` section now is")]
pub type RetrySettings = RetryConfig;

/// The `breaker` section was this copy of [`BreakerConfig`] (same keys).
#[deprecated(
    note = "use persistence_core::layer::BreakerConfig, which the `breaker` section now is"
)]
pub type BreakerSettings = BreakerConfig;

/// Failover and replica routing (see `persistence::failover`): a background
/// checker pings the primary, every replica and the backup each
/// `check_interval` with a `check_timeout` bound; traffic moves off an
/// endpoint within about `check_interval + check_timeout` of it going
/// silent, and returns after its next successful ping.
///
/// Every database (with or without replicas) also uses `check_timeout` as
/// the bound of its `Persistence::health` check, and `recovery_interval` for
/// its recovery checker: while its circuit breaker is open, one ping every
/// `recovery_interval` (each bounded by `check_timeout`); the first answer
/// lets a probe call through at once. The checker does nothing while the
/// breaker is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverSettings {
    /// Time between two checks of every endpoint (default 1s).
    #[serde(
        default = "FailoverSettings::default_interval",
        with = "humantime_serde"
    )]
    pub check_interval: Duration,
    /// Bound of one ping (default 500ms); a hung server counts as down after it.
    #[serde(
        default = "FailoverSettings::default_timeout",
        with = "humantime_serde"
    )]
    pub check_timeout: Duration,
    /// Send reads (get, find, count, page, stream...) to healthy replicas,
    /// round robin (default true). Writes always go to the primary (or the
    /// backup while the primary is down).
    #[serde(default = "FailoverSettings::default_read_from_replicas")]
    pub read_from_replicas: bool,
    /// While the circuit breaker is open, time between two recovery pings
    /// (default 100ms).
    #[serde(
        default = "FailoverSettings::default_recovery_interval",
        with = "humantime_serde"
    )]
    pub recovery_interval: Duration,
}

impl FailoverSettings {
    fn default_interval() -> Duration {
        Duration::from_secs(1)
    }
    fn default_timeout() -> Duration {
        Duration::from_millis(500)
    }
    fn default_read_from_replicas() -> bool {
        true
    }
    fn default_recovery_interval() -> Duration {
        Duration::from_millis(100)
    }
}

impl Default for FailoverSettings {
    fn default() -> Self {
        FailoverSettings {
            check_interval: Self::default_interval(),
            check_timeout: Self::default_timeout(),
            read_from_replicas: Self::default_read_from_replicas(),
            recovery_interval: Self::default_recovery_interval(),
        }
    }
}

#[cfg(feature = "mongo")]
pub use persistence_mongo::config::{
    ReadConcernLevel, ReadConcernSettings, WriteAck, WriteConcernSettings,
};

/// What the manager does with an entity's table / collection when it first
/// hands out its repository ([`keys::SCHEMA_MODE`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaMode {
    /// `ensure_schema`: create what is missing, never alter a table it did
    /// not create (the default, as before the key existed).
    #[default]
    Ensure,
    /// `verify_schema` only: create and change nothing; errors refuse the
    /// repository with a `Config` error listing every difference (one per
    /// line), warnings are logged.
    Verify,
    /// Nothing: the schema is managed elsewhere (migrations).
    Off,
}

impl SchemaMode {
    /// `ensure`, `verify` or `off`.
    pub fn name(self) -> &'static str {
        match self {
            SchemaMode::Ensure => "ensure",
            SchemaMode::Verify => "verify",
            SchemaMode::Off => "off",
        }
    }
}

/// TLS settings of a database connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// libpq-style mode: `disable`, `prefer`, `require`, `verify-ca`, `verify-full`.
    pub mode: String,
    /// A PEM file with the root certificate(s) to trust.
    pub root_cert: Option<std::path::PathBuf>,
    /// Redis only: a client certificate (PEM) for mutual TLS, with `client_key`.
    #[serde(default)]
    pub client_cert: Option<std::path::PathBuf>,
    /// Redis only: the client certificate's private key (PEM).
    #[serde(default)]
    pub client_key: Option<std::path::PathBuf>,
}

/// One named database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The backend.
    pub kind: DatabaseKind,
    /// Connection URL (not needed for `memory`, nor for `redis` with `cluster`).
    pub url: Option<Secret>,
    /// Redis Cluster node URLs ([`keys::CLUSTER`]), instead of `url`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<Secret>,
    /// PostgreSQL schema.
    pub schema: Option<String>,
    /// What the manager does with each entity's table / collection
    /// ([`keys::SCHEMA_MODE`]; default `ensure`).
    #[serde(default, skip_serializing_if = "is_default_mode")]
    pub schema_mode: SchemaMode,
    /// MongoDB database name.
    pub database: Option<String>,
    /// The entities placed in this database, by their `#[entity(name)]`
    /// ([`keys::ENTITIES`]; see `Persistence::place`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<String>,
    /// How tenants are isolated ([`keys::TENANCY`]; default: no tenancy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenancy: Option<TenancyConfig>,
    /// Pool settings.
    #[serde(default)]
    pub pool: PoolConfig,
    /// Read replicas.
    #[serde(default)]
    pub replicas: Vec<Secret>,
    /// Backup / failover server.
    pub backup: Option<Secret>,
    /// Per-call timeout.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Retry settings (see [`persistence_core::layer::Retry::from_config`]).
    pub retry: Option<RetryConfig>,
    /// Circuit breaker settings.
    pub breaker: Option<BreakerConfig>,
    /// TLS settings (PostgreSQL; `sslmode` in the URL works too).
    pub tls: Option<TlsSettings>,
    /// Failover checker and replica routing (defaults apply when replicas
    /// or a backup are configured without this section).
    pub failover: Option<FailoverSettings>,
    /// MongoDB write concern; without it `{ w: majority, journal: true }`
    /// unless the URL sets one (`w=`, `journal=`).
    #[cfg(feature = "mongo")]
    pub write_concern: Option<WriteConcernSettings>,
    /// MongoDB read concern; without it the URL's, else the server's default.
    #[cfg(feature = "mongo")]
    pub read_concern: Option<ReadConcernSettings>,
}

impl DatabaseConfig {
    /// A database of `kind` at `url` with every other setting at its default
    /// (the form to start from in code; new settings then don't break callers).
    pub fn new(kind: DatabaseKind, url: Option<Secret>) -> Self {
        DatabaseConfig {
            kind,
            url,
            cluster: Vec::new(),
            schema: None,
            schema_mode: SchemaMode::Ensure,
            database: None,
            entities: Vec::new(),
            tenancy: None,
            pool: PoolConfig::default(),
            replicas: Vec::new(),
            backup: None,
            timeout: None,
            retry: None,
            breaker: None,
            tls: None,
            failover: None,
            #[cfg(feature = "mongo")]
            write_concern: None,
            #[cfg(feature = "mongo")]
            read_concern: None,
        }
    }
}

fn is_default_mode(m: &SchemaMode) -> bool {
    *m == SchemaMode::Ensure
}

/// Cache policy for one entity type (or the default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachePolicy {
    /// Time to live of cached values.
    #[serde(default, with = "humantime_serde")]
    pub ttl: Option<Duration>,
    /// Time to live of cached "not found".
    #[serde(default, with = "humantime_serde")]
    pub negative_ttl: Option<Duration>,
    /// Time to live in L1 ([`keys::CACHE_L1_TTL`]); unset: `ttl`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub l1_ttl: Option<Duration>,
    /// Time to live in L2 ([`keys::CACHE_L2_TTL`]); unset: `ttl`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub l2_ttl: Option<Duration>,
    /// L1 capacity in bytes ([`keys::CACHE_L1_MAX_BYTES`]); unset: 10000 entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l1_max_bytes: Option<u64>,
    /// Name of the `redis` database used as L2 (none: L1 only).
    pub l2: Option<String>,
    /// Cross-instance L1 invalidation ([`keys::CACHE_BACKPLANE`]); unset:
    /// the `cache.backplane` setting, else on whenever `l2` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backplane: Option<bool>,
    /// Fail-safe on source failure ([`keys::CACHE_FAIL_SAFE`]); unset: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_safe: Option<FailSafeSettings>,
    /// Soft load timeout ([`keys::CACHE_SOFT_TIMEOUT`]); unset: none.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub soft_timeout: Option<Duration>,
    /// Hard load timeout ([`keys::CACHE_HARD_TIMEOUT`]); unset: none.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub hard_timeout: Option<Duration>,
    /// Eager refresh ([`keys::CACHE_EAGER_REFRESH`]); unset: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eager_refresh: Option<Fraction>,
    /// Cross-process stampede protection ([`keys::CACHE_LEASE`]); unset: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseSettings>,
    /// Write-through ([`keys::CACHE_WRITE_THROUGH`]); unset: on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_through: Option<bool>,
    /// Disable caching for this entity.
    #[serde(default)]
    pub disabled: bool,
}

/// The `cache` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Policy for every entity without its own.
    #[serde(default)]
    pub default: CachePolicy,
    /// Per entity logical name.
    #[serde(default)]
    pub entities: BTreeMap<String, CachePolicy>,
    /// Backplane for every policy that does not say ([`keys::CACHE_BACKPLANE`];
    /// unset: on wherever L2 is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backplane: Option<bool>,
    /// [`keys::CACHE_HEARTBEAT`].
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub heartbeat: Option<Duration>,
    /// [`keys::CACHE_HEARTBEAT_TIMEOUT`].
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub heartbeat_timeout: Option<Duration>,
    /// [`keys::CACHE_DEGRADED_TTL`].
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub degraded_ttl: Option<Duration>,
    /// [`keys::CACHE_MAX_QUEUED_INVALIDATIONS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queued_invalidations: Option<usize>,
}

impl CacheConfig {
    /// Whether an entity with `policy` gets a backplane: its own setting,
    /// else `cache.backplane`, else on — and only where L2 is set.
    pub fn backplane_for(&self, policy: &CachePolicy) -> bool {
        policy.l2.is_some() && policy.backplane.or(self.backplane).unwrap_or(true)
    }

    /// Whether a cache policy (the default or an entity's, not disabled)
    /// names database `name` as its L2.
    pub fn is_l2(&self, name: &str) -> bool {
        std::iter::once(&self.default)
            .chain(self.entities.values())
            .any(|p| !p.disabled && p.l2.as_deref() == Some(name))
    }
}

/// The `metrics` section (see [`persistence_core::layer::Metrics`], [`persistence_core::layer::LeakDetector`]).
///
/// ```yaml
/// metrics: { slow_threshold: 200ms, leak_threshold: 30s, pool_warn_utilization: 85, sample_interval: 1s }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Slow-operation threshold (`metrics.slow_threshold`).
    #[serde(with = "humantime_serde")]
    pub slow_threshold: Duration,
    /// Leak threshold (`metrics.leak_threshold`).
    #[serde(with = "humantime_serde")]
    pub leak_threshold: Duration,
    /// Pool utilization warning, percent 1..=100 (`metrics.pool_warn_utilization`).
    pub pool_warn_utilization: u8,
    /// Pool gauge sampling period (`metrics.sample_interval`).
    #[serde(with = "humantime_serde")]
    pub sample_interval: Duration,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            slow_threshold: Duration::from_millis(500),
            leak_threshold: Duration::from_secs(30),
            pool_warn_utilization: 85,
            sample_interval: Duration::from_secs(1),
        }
    }
}

/// The `registry` section: where connection definitions are stored and how
/// their secrets are keyed (see `persistence::registry`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The database holding the definitions table (`postgres` or `sqlite`; default `main`).
    pub database: Option<String>,
    /// The variable holding the key (default [`keys::ENV_REGISTRY_KEY`]).
    pub key_env: Option<String>,
    /// A file holding the key (default: the file named by [`keys::ENV_REGISTRY_KEY_FILE`]).
    pub key_file: Option<std::path::PathBuf>,
    /// Most pools open at once (default 16).
    pub max_open_pools: Option<usize>,
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistenceConfig {
    /// Named databases.
    #[serde(default)]
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// Cache policy.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Metrics, slow log and leak detection.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Profile overlays (already applied by the loader; kept for `describe`).
    #[serde(default, skip_serializing)]
    pub profiles: BTreeMap<String, serde_json::Value>,
    /// The connection registry, when used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryConfig>,
}

impl PersistenceConfig {
    /// The cache policy of an entity: its own, else the default.
    pub fn cache_policy(&self, entity: &str) -> &CachePolicy {
        self.cache
            .entities
            .get(entity)
            .unwrap_or(&self.cache.default)
    }

    /// The resolved topology, one line per database, secrets redacted.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (name, db) in &self.databases {
            let _ = write!(out, "{name}: {}", db.kind.name());
            if let Some(url) = &db.url {
                let _ = write!(out, " at {url}");
            }
            if !db.cluster.is_empty() {
                let ns: Vec<String> = db.cluster.iter().map(|n| n.to_string()).collect();
                let _ = write!(out, " cluster [{}]", ns.join(", "));
            }
            if let Some(s) = &db.schema {
                let _ = write!(out, " schema {s}");
            }
            if let Some(d) = &db.database {
                let _ = write!(out, " database {d}");
            }
            if db.schema_mode != SchemaMode::Ensure {
                let _ = write!(out, ", schema_mode {}", db.schema_mode.name());
            }
            if !db.entities.is_empty() {
                let _ = write!(out, ", entities [{}]", db.entities.join(", "));
            }
            if let Some(t) = &db.tenancy {
                let _ = write!(out, ", tenancy {}", t.strategy.name());
            }
            if !db.replicas.is_empty() {
                let rs: Vec<String> = db.replicas.iter().map(|r| r.to_string()).collect();
                let _ = write!(out, ", replicas [{}]", rs.join(", "));
            }
            if let Some(b) = &db.backup {
                let _ = write!(out, ", backup {b}");
            }
            if let Some(f) = &db.failover {
                let _ = write!(
                    out,
                    ", checked every {:?} (timeout {:?}, reads from replicas: {})",
                    f.check_interval, f.check_timeout, f.read_from_replicas
                );
            }
            if let Some(m) = db.pool.max_connections {
                let _ = write!(out, ", pool max {m}");
            }
            out.push('\n');
        }
        out
    }
}
