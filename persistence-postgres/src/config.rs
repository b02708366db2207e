//! Connection and pool settings.

use std::fmt;
use std::time::Duration;

use persistence_core::error::redact_url;
use persistence_core::names::{self, NameKind};
use persistence_core::{Error, Result};

/// Where and how to connect.
///
/// The URL selects the dialect: `postgres://...` / `postgresql://...` for
/// PostgreSQL, `sqlite:...` for SQLite (a file such as
/// `sqlite:///var/app.db?mode=rwc`, or `sqlite::memory:`). An in-memory
/// SQLite database lives in its connection, so for `:memory:` URLs the pool is
/// pinned to one connection that is never recycled.
#[derive(Clone)]
pub struct RelationalConfig {
    /// Connection URL (never printed: `Debug` redacts it).
    pub url: String,
    /// PostgreSQL schema holding the tables (`None`: unqualified, in the
    /// connection's default schema, normally `public`). Must match
    /// `^[a-z_][a-z0-9_]{0,62}$` and not be reserved (`public`,
    /// `information_schema`, `pg_*`, ...: see [`persistence_core::names`]).
    /// Not supported on SQLite.
    pub schema: Option<String>,
    /// Pool size (default: sqlx's default, 10; 1 for in-memory SQLite).
    pub max_connections: Option<u32>,
    /// Connections kept open.
    pub min_connections: Option<u32>,
    /// How long to wait for a pooled connection before failing with `Unavailable`.
    pub acquire_timeout: Option<Duration>,
    /// Close connections idle this long.
    pub idle_timeout: Option<Duration>,
    /// Recycle connections after this long. On PostgreSQL a recycled
    /// connection also gives back what its server process accumulated:
    /// its prepared statements and its catalog caches, which grow with
    /// every tenant schema the connection touched (see the README, "Tenancy
    /// at scale"); a fresh one re-prepares on first use.
    pub max_lifetime: Option<Duration>,
    /// Prepared statements kept per connection (sqlx's statement cache,
    /// least recently used evicted and closed; default 100). Each tenant
    /// schema has its own statement texts, so a connection serving many
    /// tenants needs about `tenants per connection x statement shapes`
    /// here, or it keeps re-preparing. At least 1: sqlx with 0 still
    /// prepares named statements but never closes them (they pile up on
    /// the server), so `0` is a `Config` error.
    pub statement_cache_capacity: Option<usize>,
    /// Tenant-affine routing for schema-per-tenant (PostgreSQL): the pool
    /// is split into this many groups of connections (each
    /// `max_connections / tenant_shards`, at least one) and every tenant's
    /// store ([`crate::Tenants::store`]) uses the group its name hashes to,
    /// so a connection serves about `tenants / tenant_shards` tenants and
    /// its statement and catalog caches stay bounded. `None` or `1`: one
    /// pool for all tenants.
    pub tenant_shards: Option<u32>,
    /// How a tenant's calls choose among the `tenant_shards` groups
    /// (default [`TenantRouting::Home`]: always the tenant's own group).
    /// [`TenantRouting::Spill`] lets a tenant that alone fills its group
    /// use the others, so one busy tenant can use the whole pool. Needs
    /// `tenant_shards` of at least 2 (a `Config` error otherwise).
    pub tenant_routing: TenantRouting,
    /// How the repositories of a tenant's store ([`crate::Tenants::store`])
    /// name their tables (default [`TenantStatements::Qualified`]).
    pub tenant_statements: TenantStatements,
    /// PostgreSQL `statement_timeout` for every connection (expiry is `Timeout`).
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL `application_name`.
    pub application_name: Option<String>,
    /// PostgreSQL TLS mode (rustls); overrides `sslmode` in the URL when set.
    pub ssl_mode: Option<SslMode>,
    /// A PEM file of root certificates trusted for `VerifyCa` / `VerifyFull`
    /// (e.g. a private CA or a self-signed server certificate).
    pub ssl_root_cert: Option<std::path::PathBuf>,
    /// Create the pool without opening a connection, so a server that is
    /// down at start-up is not an error (connections open on first use).
    /// Used for failover endpoints.
    pub connect_lazy: bool,
}

/// How the repositories of a tenant's store name their tables
/// (schema-per-tenant on PostgreSQL; see the README, "Tenancy at scale").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TenantStatements {
    /// Schema-qualified names (`"acme"."orders"`), each call a plain
    /// statement on the pool: one round trip, but every tenant has its own
    /// statement texts, so a connection serving many tenants prepares (and
    /// caches, see `statement_cache_capacity`) its statements per tenant.
    #[default]
    Qualified,
    /// Bare names (`"orders"`) and each call in a transaction that first
    /// runs `SELECT set_config('search_path', '"acme"', true)` (local to the
    /// transaction, never the session's): one statement text for all
    /// tenants, at the cost of `BEGIN` / `set_config` / `COMMIT` round trips.
    /// `UnitOfWork`s and bulk inserts of the tenant's store set it too.
    SearchPath,
}

impl TenantStatements {
    /// Parse `qualified` or `search_path`.
    pub fn parse(s: &str) -> Result<TenantStatements> {
        match s {
            "qualified" => Ok(TenantStatements::Qualified),
            "search_path" => Ok(TenantStatements::SearchPath),
            other => Err(Error::config(format!(
                "unknown tenant_statements `{other}` (qualified or search_path)"
            ))),
        }
    }
}

/// How the calls of a tenant's store choose among the tenant-affine
/// connection groups (`RelationalConfig::tenant_shards`; see the README,
/// "Tenancy at scale"). Routing only picks a connection: a tenant's
/// statements name its own schema whichever group runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TenantRouting {
    /// Every call on the tenant's home group (the one its name hashes to):
    /// a connection serves only the tenants of its group, and a tenant
    /// never uses more than its group's connections.
    #[default]
    Home,
    /// The home group, unless the tenant already has more repository
    /// calls in flight (waiting for a connection or running, in this
    /// process) than a group has connections: then the group with the
    /// fewest calls in flight. Load spread over many tenants stays home,
    /// so a connection keeps serving about `tenants / tenant_shards` of
    /// them; a single or a hot tenant, which would otherwise queue on its
    /// group while others idle, spreads over the whole pool (its few
    /// statements are then prepared on every connection it reaches).
    /// Units of work, streams and bulk copies are routed the same way when
    /// they start but are not counted while they run.
    Spill,
}

impl TenantRouting {
    /// Parse `home` or `spill`.
    pub fn parse(s: &str) -> Result<TenantRouting> {
        match s {
            "home" => Ok(TenantRouting::Home),
            "spill" => Ok(TenantRouting::Spill),
            other => Err(Error::config(format!(
                "unknown tenant_routing `{}` (home or spill)",
                other.chars().take(32).collect::<String>()
            ))),
        }
    }
}

/// A pooled connection idle at least this long is pinged before it is
/// handed out; one used more recently is handed out as is (see
/// `connect_options`).
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// PostgreSQL TLS modes (libpq's `sslmode`), negotiated with rustls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS if the server offers it, without certificate checks.
    Prefer,
    /// TLS required, certificate not checked.
    Require,
    /// TLS required, certificate chain checked against the roots.
    VerifyCa,
    /// TLS required, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    /// Parse libpq's spelling (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`).
    pub fn parse(s: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::config(format!(
                    "unknown sslmode `{}`",
                    other.chars().take(32).collect::<String>()
                )));
            }
        })
    }

    #[cfg(feature = "postgres")]
    fn to_sqlx(self) -> sea_orm::sqlx::postgres::PgSslMode {
        use sea_orm::sqlx::postgres::PgSslMode as M;
        match self {
            SslMode::Disable => M::Disable,
            SslMode::Prefer => M::Prefer,
            SslMode::Require => M::Require,
            SslMode::VerifyCa => M::VerifyCa,
            SslMode::VerifyFull => M::VerifyFull,
        }
    }
}

impl fmt::Debug for RelationalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelationalConfig")
            .field("url", &redact_url(&self.url))
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("statement_cache_capacity", &self.statement_cache_capacity)
            .field("tenant_shards", &self.tenant_shards)
            .field("tenant_routing", &self.tenant_routing)
            .field("tenant_statements", &self.tenant_statements)
            .field("statement_timeout", &self.statement_timeout)
            .field("application_name", &self.application_name)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("connect_lazy", &self.connect_lazy)
            .finish()
    }
}

/// The embedded default: an in-memory SQLite database.
pub const DEFAULT_URL: &str = "sqlite::memory:";

impl RelationalConfig {
    /// Settings for `url`, everything else default.
    pub fn new(url: impl Into<String>) -> Self {
        RelationalConfig {
            url: url.into(),
            schema: None,
            max_connections: None,
            min_connections: None,
            acquire_timeout: None,
            idle_timeout: None,
            max_lifetime: None,
            statement_cache_capacity: None,
            tenant_shards: None,
            tenant_routing: TenantRouting::Home,
            tenant_statements: TenantStatements::Qualified,
            statement_timeout: None,
            application_name: None,
            ssl_mode: None,
            ssl_root_cert: None,
            connect_lazy: false,
        }
    }

    /// TLS mode (PostgreSQL).
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = Some(mode);
        self
    }

    /// Trusted root certificates, PEM (PostgreSQL).
    pub fn ssl_root_cert(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ssl_root_cert = Some(path.into());
        self
    }

    /// `DATABASE_URL` when set, otherwise [`DEFAULT_URL`] (in-memory SQLite).
    pub fn from_env() -> Self {
        Self::new(std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string()))
    }

    /// Use this PostgreSQL schema.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
    /// Pool size.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n);
        self
    }
    /// Acquire timeout.
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.acquire_timeout = Some(d);
        self
    }
    /// Prepared statements kept per connection (see the field).
    pub fn statement_cache_capacity(mut self, n: usize) -> Self {
        self.statement_cache_capacity = Some(n);
        self
    }
    /// Tenant-affine connection groups (see the field).
    pub fn tenant_shards(mut self, n: u32) -> Self {
        self.tenant_shards = Some(n);
        self
    }
    /// How tenant calls choose among the groups (see the field).
    pub fn tenant_routing(mut self, r: TenantRouting) -> Self {
        self.tenant_routing = r;
        self
    }
    /// How tenant stores name their tables (see the field).
    pub fn tenant_statements(mut self, t: TenantStatements) -> Self {
        self.tenant_statements = t;
        self
    }
    /// Statement timeout (PostgreSQL).
    pub fn statement_timeout(mut self, d: Duration) -> Self {
        self.statement_timeout = Some(d);
        self
    }

    /// True for a `sqlite:` URL.
    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    /// True for an in-memory SQLite URL.
    pub fn is_sqlite_memory(&self) -> bool {
        self.is_sqlite() && (self.url.contains(":memory:") || self.url.contains("mode=memory"))
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.statement_cache_capacity == Some(0) {
            return Err(Error::config(
                "RelationalConfig.statement_cache_capacity must be at least 1 (sqlx with 0 \
                 never closes the statements it prepares)",
            ));
        }
        if self.tenant_shards == Some(0) {
            return Err(Error::config(
                "RelationalConfig.tenant_shards must be at least 1",
            ));
        }
        if self.tenant_shards.unwrap_or(1) > 1 && self.is_sqlite() {
            return Err(Error::config(
                "RelationalConfig.tenant_shards needs PostgreSQL (schema-per-tenant)",
            ));
        }
        if self.tenant_routing != TenantRouting::Home && self.tenant_shards.unwrap_or(1) < 2 {
            return Err(Error::config(
                "RelationalConfig.tenant_routing `spill` needs tenant_shards of at least 2",
            ));
        }
        if self.tenant_statements != TenantStatements::Qualified && self.is_sqlite() {
            return Err(Error::config(
                "RelationalConfig.tenant_statements needs PostgreSQL (schema-per-tenant)",
            ));
        }
        if let Some(s) = &self.schema {
            names::validate_config(NameKind::Schema, s, "RelationalConfig.schema")?;
            if self.is_sqlite() {
                return Err(Error::config("schemas are not supported on SQLite"));
            }
        }
        let postgres = self.url.starts_with("postgres://") || self.url.starts_with("postgresql://");
        if !(self.is_sqlite() || postgres) {
            return Err(Error::config(format!(
                "unsupported database URL `{}` (postgres:// or sqlite:)",
                redact_url(&self.url)
            )));
        }
        // Without the dialect's cargo feature, sea-orm has no driver for it.
        let (dialect, feature, compiled) = if postgres {
            ("PostgreSQL", "postgres", cfg!(feature = "postgres"))
        } else {
            ("SQLite", "sqlite", cfg!(feature = "sqlite"))
        };
        if !compiled {
            return Err(Error::config(format!(
                "{dialect} support is not compiled in (feature `{feature}` of persistence-postgres)"
            )));
        }
        Ok(())
    }

    pub(crate) fn connect_options(&self) -> sea_orm::ConnectOptions {
        let mut o = sea_orm::ConnectOptions::new(self.url.clone());
        o.sqlx_logging(false);
        o.connect_lazy(self.connect_lazy);
        if self.is_sqlite_memory() {
            o.max_connections(1)
                .min_connections(1)
                .idle_timeout(None::<Duration>)
                .max_lifetime(None::<Duration>);
        } else {
            if let Some(n) = self.max_connections {
                o.max_connections(n);
            }
            if let Some(n) = self.min_connections {
                o.min_connections(n);
            }
            if let Some(d) = self.idle_timeout {
                o.idle_timeout(d);
            }
            if let Some(d) = self.max_lifetime {
                o.max_lifetime(d);
            }
        }
        if let Some(d) = self.acquire_timeout {
            o.acquire_timeout(d);
        }
        // sqlx 0.9 pings every connection given back to the pool (always)
        // and, by default, every connection it hands out: three round trips
        // per statement. Only a connection idle for `PING_IF_IDLE_FOR` is
        // pinged on the way out: a point read at 32 tasks went from 21.9 to
        // 18.7 µs of client CPU and 1.22x the throughput of plain sqlx
        // (benches/concurrency.rs, issue #19 item 5). A connection that broke
        // is still discarded: the release ping after its failed statement
        // fails.
        o.test_before_acquire_if_idle_for(PING_IF_IDLE_FOR);
        // Tell the operation in progress (if a `Metrics` layer measures it)
        // that its pooled connection is in hand: times the acquire wait.
        #[cfg(feature = "postgres")]
        o.map_sqlx_postgres_before_acquire(|_, _| {
            persistence_core::layer::probe::connection_acquired();
            Box::pin(std::future::ready(Ok(true)))
        });
        #[cfg(feature = "sqlite")]
        o.map_sqlx_sqlite_before_acquire(|_, _| {
            persistence_core::layer::probe::connection_acquired();
            Box::pin(std::future::ready(Ok(true)))
        });
        #[cfg(feature = "sqlite")]
        if let (true, Some(n)) = (self.is_sqlite(), self.statement_cache_capacity) {
            o.map_sqlx_sqlite_opts(move |opts| opts.statement_cache_capacity(n));
        }
        #[cfg(feature = "postgres")]
        if !self.is_sqlite() {
            if let Some(d) = self.statement_timeout {
                o.statement_timeout(d);
            }
            if let Some(a) = &self.application_name {
                o.set_application_name(a.clone());
            }
            let cache = self.statement_cache_capacity;
            if self.ssl_mode.is_some() || self.ssl_root_cert.is_some() || cache.is_some() {
                let mode = self.ssl_mode;
                let root = self.ssl_root_cert.clone();
                // One closure: sea-orm keeps only the last one set.
                o.map_sqlx_postgres_opts(move |mut opts| {
                    if let Some(n) = cache {
                        opts = opts.statement_cache_capacity(n);
                    }
                    if let Some(m) = mode {
                        opts = opts.ssl_mode(m.to_sqlx());
                    }
                    if let Some(r) = &root {
                        opts = opts.ssl_root_cert(r);
                    }
                    opts
                });
            }
        }
        o
    }
}

/// Check a schema name with [`persistence_core::names`]:
/// `^[a-z_][a-z0-9_]{0,62}$` and not reserved (`InvalidInput`).
pub fn validate_schema_name(name: &str) -> Result<()> {
    names::validate(NameKind::Schema, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let c = RelationalConfig::new("postgres://u:secret@h/db");
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn tenant_shards_need_one_group_and_postgres() {
        let pg = RelationalConfig::new("postgres://h/db");
        assert!(pg.clone().tenant_shards(4).validate().is_ok());
        let e = pg.tenant_shards(0).validate().expect_err("zero");
        assert_eq!(e.kind(), &persistence_core::ErrorKind::Config);
        let lite = RelationalConfig::new("sqlite::memory:");
        assert!(lite.clone().tenant_shards(1).validate().is_ok());
        let e = lite.tenant_shards(2).validate().expect_err("sqlite");
        assert_eq!(e.kind(), &persistence_core::ErrorKind::Config);
    }

    #[test]
    fn tenant_routing_parses_and_needs_groups() {
        assert_eq!(
            TenantRouting::parse("spill").expect("parse"),
            TenantRouting::Spill
        );
        assert_eq!(
            TenantRouting::parse("home").expect("parse"),
            TenantRouting::Home
        );
        let e = TenantRouting::parse("random").expect_err("unknown");
        assert_eq!(e.kind(), &persistence_core::ErrorKind::Config);
        assert!(e.to_string().contains("random"), "{e}");
        let pg = RelationalConfig::new("postgres://h/db");
        assert_eq!(pg.tenant_routing, TenantRouting::Home);
        assert!(
            pg.clone()
                .tenant_shards(2)
                .tenant_routing(TenantRouting::Spill)
                .validate()
                .is_ok()
        );
        for shards in [None, Some(1)] {
            let mut c = pg.clone().tenant_routing(TenantRouting::Spill);
            c.tenant_shards = shards;
            let e = c.validate().expect_err("spill without groups");
            assert_eq!(e.kind(), &persistence_core::ErrorKind::Config);
            assert!(e.to_string().contains("tenant_routing"), "{e}");
        }
    }

    #[test]
    fn tenant_statements_parse_and_need_postgres() {
        assert_eq!(
            TenantStatements::parse("search_path").expect("parse"),
            TenantStatements::SearchPath
        );
        assert_eq!(
            TenantStatements::parse("qualified").expect("parse"),
            TenantStatements::Qualified
        );
        let e = TenantStatements::parse("session").expect_err("unknown");
        assert!(e.to_string().contains("session"), "{e}");
        let pg = RelationalConfig::new("postgres://h/db");
        assert_eq!(pg.tenant_statements, TenantStatements::Qualified);
        assert!(
            pg.tenant_statements(TenantStatements::SearchPath)
                .validate()
                .is_ok()
        );
        let e = RelationalConfig::new("sqlite::memory:")
            .tenant_statements(TenantStatements::SearchPath)
            .validate()
            .expect_err("sqlite");
        assert_eq!(e.kind(), &persistence_core::ErrorKind::Config);
    }

    #[test]
    fn schema_names() {
        assert!(validate_schema_name("t_abc_1").is_ok());
        for bad in [
            "",
            "A",
            "1a",
            "a-b",
            "x; drop",
            "x\"; DROP TABLE t; --",
            "public",
            "information_schema",
            "pg_catalog",
            &"a".repeat(64),
        ] {
            assert!(validate_schema_name(bad).is_err(), "{bad}");
        }
        for reserved in ["public", "pg_temp", "admin"] {
            let err = RelationalConfig::new("postgres://h/db")
                .schema(reserved)
                .validate()
                .expect_err(reserved);
            assert_eq!(err.kind(), &persistence_core::ErrorKind::Config);
            assert!(
                err.message().starts_with(&format!(
                    "RelationalConfig.schema: \"{reserved}\" is reserved"
                )),
                "{err}"
            );
        }
        assert!(RelationalConfig::new("postgres://h/db").validate().is_ok());
    }
}
