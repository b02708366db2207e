//! Environment detection: what to use when no configuration file is given.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::{DatabaseConfig, DatabaseKind, PersistenceConfig, Secret};
use persistence_core::error::{Error, Result};

/// The detected configuration and why each database was chosen.
#[derive(Debug, Clone)]
pub struct Detection {
    /// Databases `main` (relational), `documents` and, when found, `cache` (Redis).
    pub config: PersistenceConfig,
    /// One line per decision, e.g. `main: postgres from DATABASE_URL`.
    pub reasons: Vec<String>,
}

/// Where and how to look.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Per-port connect timeout.
    pub timeout: Duration,
    /// Local PostgreSQL address.
    pub postgres: SocketAddr,
    /// Local MongoDB address.
    pub mongo: SocketAddr,
    /// Local Redis address.
    pub redis: SocketAddr,
    /// Variables to use instead of the process environment (tests).
    pub env: Option<Vec<(String, String)>>,
    /// Probe the local default ports at all. `false` ([`Probe::env_only`]):
    /// environment URLs, else the embedded defaults — what an example or a
    /// developer laptop wants when a local server should not be picked up
    /// just because it happens to run.
    pub local: bool,
}

impl Default for Probe {
    fn default() -> Self {
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Probe {
            timeout: Duration::from_millis(300),
            postgres: local(5432),
            mongo: local(27017),
            redis: local(6379),
            env: None,
            local: true,
        }
    }
}

impl Probe {
    fn not_found(&self, addr: SocketAddr) -> String {
        if self.local {
            format!("nothing on {addr}")
        } else {
            "local servers not probed".to_string()
        }
    }
    /// Environment URLs, else embedded defaults: local ports are not probed.
    pub fn env_only() -> Self {
        Probe {
            local: false,
            ..Probe::default()
        }
    }
    fn var(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(vars) => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            None => std::env::var(name).ok(),
        }
        .filter(|v| !v.trim().is_empty())
    }
    fn answers(&self, addr: SocketAddr) -> bool {
        self.local && TcpStream::connect_timeout(&addr, self.timeout).is_ok()
    }
}

fn db(kind: DatabaseKind, url: Option<String>) -> DatabaseConfig {
    DatabaseConfig {
        database: (kind == DatabaseKind::Mongo).then(|| "app".to_string()),
        ..DatabaseConfig::new(kind, url.map(Secret::new))
    }
}

/// Whether `kind` is compiled in; if not, say why `var` is passed over.
fn compiled(kind: DatabaseKind, var: &str, reasons: &mut Vec<String>) -> bool {
    let yes = kind.is_compiled();
    if !yes {
        reasons.push(format!(
            "{var} ignored: persistence was built without the `{}` feature",
            kind.feature().unwrap_or_default()
        ));
    }
    yes
}

/// Decide the topology without a config file: environment URLs first
/// (`DATABASE_URL`, `MONGODB_URL`, `REDIS_URL`), then servers answering on
/// the default local ports, then the embedded defaults (in-memory SQLite,
/// the memory document store, no L2). In the `production` profile the
/// embedded fallbacks are off: a database that is neither configured nor
/// reachable is a `Config` error. Every decision is logged and returned.
pub fn detect(profile: &str, probe: &Probe) -> Result<Detection> {
    let production = profile == "production";
    let mut config = PersistenceConfig::default();
    let mut reasons = Vec::new();
    let mut missing = Vec::new();

    // Relational. A URL or a local server of a kind this build lacks (cargo
    // features) is passed over with a reason, as if it were not there.
    let database_url = probe.var("DATABASE_URL").filter(|url| {
        let kind = if url.starts_with("sqlite:") {
            DatabaseKind::Sqlite
        } else {
            DatabaseKind::Postgres
        };
        compiled(kind, "DATABASE_URL", &mut reasons)
    });
    if let Some(url) = database_url {
        let kind = if url.starts_with("sqlite:") {
            DatabaseKind::Sqlite
        } else {
            DatabaseKind::Postgres
        };
        reasons.push(format!(
            "main: {} from DATABASE_URL ({})",
            kind.name(),
            Secret::new(url.clone())
        ));
        config.databases.insert("main".into(), db(kind, Some(url)));
    } else if DatabaseKind::Postgres.is_compiled() && probe.answers(probe.postgres) {
        let url = format!("postgres://postgres@{}/postgres", probe.postgres);
        reasons.push(format!("main: postgres answering on {}", probe.postgres));
        config
            .databases
            .insert("main".into(), db(DatabaseKind::Postgres, Some(url)));
    } else if production {
        missing.push("main (set DATABASE_URL)");
    } else if DatabaseKind::Sqlite.is_compiled() {
        reasons.push(format!(
            "main: embedded in-memory SQLite (no DATABASE_URL, {})",
            probe.not_found(probe.postgres)
        ));
        config.databases.insert(
            "main".into(),
            db(DatabaseKind::Sqlite, Some("sqlite::memory:".into())),
        );
    } else {
        reasons.push("main: embedded memory store (built without the `sqlite` feature)".into());
        config
            .databases
            .insert("main".into(), db(DatabaseKind::Memory, None));
    }

    // Documents.
    let mongodb_url = probe
        .var("MONGODB_URL")
        .filter(|_| compiled(DatabaseKind::Mongo, "MONGODB_URL", &mut reasons));
    if let Some(url) = mongodb_url {
        reasons.push(format!(
            "documents: mongo from MONGODB_URL ({})",
            Secret::new(url.clone())
        ));
        config
            .databases
            .insert("documents".into(), db(DatabaseKind::Mongo, Some(url)));
    } else if DatabaseKind::Mongo.is_compiled() && probe.answers(probe.mongo) {
        let url = format!("mongodb://{}/?directConnection=true", probe.mongo);
        reasons.push(format!("documents: mongo answering on {}", probe.mongo));
        config
            .databases
            .insert("documents".into(), db(DatabaseKind::Mongo, Some(url)));
    } else if production {
        missing.push("documents (set MONGODB_URL)");
    } else {
        reasons.push(format!(
            "documents: embedded memory store (no MONGODB_URL, {})",
            probe.not_found(probe.mongo)
        ));
        config
            .databases
            .insert("documents".into(), db(DatabaseKind::Memory, None));
    }

    // Cache L2 (optional everywhere: L1 needs no server).
    let redis_url = probe
        .var("REDIS_URL")
        .filter(|_| compiled(DatabaseKind::Redis, "REDIS_URL", &mut reasons));
    if let Some(url) = redis_url {
        reasons.push(format!(
            "cache: redis L2 from REDIS_URL ({})",
            Secret::new(url.clone())
        ));
        config
            .databases
            .insert("cache".into(), db(DatabaseKind::Redis, Some(url)));
    } else if DatabaseKind::Redis.is_compiled() && probe.answers(probe.redis) {
        reasons.push(format!("cache: redis L2 answering on {}", probe.redis));
        config.databases.insert(
            "cache".into(),
            db(
                DatabaseKind::Redis,
                Some(format!("redis://{}", probe.redis)),
            ),
        );
    } else {
        reasons.push(format!(
            "cache: in-process L1 only (no REDIS_URL, {})",
            probe.not_found(probe.redis)
        ));
    }
    if config.databases.contains_key("cache") {
        config.cache.default.l2 = Some("cache".into());
    }

    if !missing.is_empty() {
        return Err(Error::config(format!(
            "profile production has no embedded fallbacks; not configured and not reachable: {}",
            missing.join(", ")
        )));
    }
    for r in &reasons {
        tracing::info!(target: "persistence::config", "{r}");
    }
    Ok(Detection { config, reasons })
}
