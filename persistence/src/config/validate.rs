//! [`PersistenceConfig::validate`]: the checks across keys that serde cannot
//! express (names, cross-references, kinds compiled in, per-kind settings).

use std::time::Duration;

#[cfg(feature = "mongo")]
use super::WriteAck;
use super::{DatabaseConfig, DatabaseKind, PersistenceConfig, Secret, keys};

impl PersistenceConfig {
    /// Check cross-references and required values: a URL for every kind but
    /// `memory`, database names as identifiers, schema and database names
    /// per [`persistence_core::names`] (spelling, reserved names), `cache.*.l2` naming a
    /// `redis` database.
    pub fn validate(&self) -> persistence_core::Result<()> {
        for (name, db) in &self.databases {
            persistence_core::entity::validate_identifier(name).map_err(|e| {
                persistence_core::Error::config(format!("databases.{name}: {}", e.message()))
            })?;
            db.kind.check_compiled(name)?;
            if let Some(schema) = &db.schema {
                persistence_core::names::validate_config(
                    persistence_core::names::NameKind::Schema,
                    schema,
                    &format!("databases.{name}.{}", keys::SCHEMA),
                )?;
            }
            if let Some(database) = &db.database {
                persistence_core::names::validate_config(
                    persistence_core::names::NameKind::Database,
                    database,
                    &format!("databases.{name}.{}", keys::DATABASE),
                )?;
            }
            validate_cluster(name, db)?;
            validate_entities(name, db, &self.databases)?;
            if let Some(t) = &db.tenancy {
                t.validate(name, db.kind)?;
            }
            if db.url.is_none() && db.kind != DatabaseKind::Memory && db.cluster.is_empty() {
                return Err(persistence_core::Error::config(format!(
                    "databases.{name}.url is required for kind {}",
                    db.kind.name()
                )));
            }
            let schemes: &[&str] = match db.kind {
                DatabaseKind::Postgres => &["postgres://", "postgresql://"],
                DatabaseKind::Sqlite => &["sqlite:"],
                DatabaseKind::Mongo => &["mongodb://", "mongodb+srv://"],
                DatabaseKind::Redis => &["redis://", "rediss://", "redis+unix://", "unix://"],
                DatabaseKind::Memory => &[],
            };
            let has_endpoints = !db.replicas.is_empty() || db.backup.is_some();
            if has_endpoints && matches!(db.kind, DatabaseKind::Memory | DatabaseKind::Redis) {
                return Err(persistence_core::Error::config(format!(
                    "databases.{name}: replicas and backup are not supported for kind {}",
                    db.kind.name()
                )));
            }
            if let Some(tls) = &db.tls {
                let mut urls = db
                    .url
                    .iter()
                    .chain(&db.cluster)
                    .map(Secret::expose)
                    .peekable();
                if urls.peek().is_none() {
                    validate_tls(name, db.kind, tls, None)?;
                }
                for url in urls {
                    validate_tls(name, db.kind, tls, Some(url))?;
                }
            }
            if let Some(f) = &db.failover {
                if f.check_interval.is_zero()
                    || f.check_timeout.is_zero()
                    || f.recovery_interval.is_zero()
                {
                    return Err(persistence_core::Error::config(format!(
                        "databases.{name}.failover: check_interval, check_timeout and recovery_interval must be greater than zero"
                    )));
                }
            }
            #[cfg(feature = "mongo")]
            if db.kind != DatabaseKind::Mongo {
                for (key, set) in [
                    (keys::WRITE_CONCERN, db.write_concern.is_some()),
                    (keys::READ_CONCERN, db.read_concern.is_some()),
                ] {
                    if set {
                        return Err(persistence_core::Error::config(format!(
                            "databases.{name}.{key} applies to kind mongo only, not {}",
                            db.kind.name()
                        )));
                    }
                }
            }
            #[cfg(feature = "mongo")]
            if let Some(wc) = &db.write_concern {
                if wc.w == WriteAck::Nodes(0) && wc.journal {
                    return Err(persistence_core::Error::config(format!(
                        "databases.{name}.write_concern: w: 0 (unacknowledged) cannot wait for the journal; set journal: false"
                    )));
                }
                if matches!(&wc.w, WriteAck::Tag(t) if t.is_empty()) {
                    return Err(persistence_core::Error::config(format!(
                        "databases.{name}.write_concern.w is empty: expected majority, a number or a tag set name"
                    )));
                }
            }
            let urls = db.url.iter().chain(&db.replicas).chain(&db.backup);
            for (i, url) in urls.enumerate() {
                if !schemes.is_empty() && !schemes.iter().any(|s| url.expose().starts_with(s)) {
                    let which = if i == 0 { "url" } else { "replica/backup url" };
                    return Err(persistence_core::Error::config(format!(
                        "databases.{name}.{which} ({url}) is not a {} URL: expected it to start with {}",
                        db.kind.name(),
                        schemes.join(" or ")
                    )));
                }
            }
        }
        let m = &self.metrics;
        if !(1..=100).contains(&m.pool_warn_utilization) {
            return Err(persistence_core::Error::config(format!(
                "metrics.pool_warn_utilization is {}: expected a percentage from 1 to 100",
                m.pool_warn_utilization
            )));
        }
        for (key, d) in [
            ("leak_threshold", m.leak_threshold),
            ("sample_interval", m.sample_interval),
        ] {
            if d.is_zero() {
                return Err(persistence_core::Error::config(format!(
                    "metrics.{key} must be greater than zero"
                )));
            }
        }
        let policies = std::iter::once(("default".to_string(), &self.cache.default)).chain(
            self.cache
                .entities
                .iter()
                .map(|(k, v)| (format!("entities.{k}"), v)),
        );
        let c = &self.cache;
        if let Some(hb) = c.heartbeat {
            if hb.is_zero() {
                return Err(persistence_core::Error::config(
                    "cache.heartbeat must be greater than zero",
                ));
            }
        }
        let hb = c.heartbeat.unwrap_or(Duration::from_millis(250));
        if let Some(t) = c.heartbeat_timeout {
            if t <= hb {
                return Err(persistence_core::Error::config(format!(
                    "cache.heartbeat_timeout ({t:?}) must be longer than cache.heartbeat ({hb:?})"
                )));
            }
        }
        if c.degraded_ttl.is_some_and(|t| t.is_zero()) {
            return Err(persistence_core::Error::config(
                "cache.degraded_ttl must be greater than zero",
            ));
        }
        for (path, policy) in policies {
            for (key, ttl) in [
                (keys::CACHE_TTL, policy.ttl),
                (keys::CACHE_NEGATIVE_TTL, policy.negative_ttl),
                (keys::CACHE_L1_TTL, policy.l1_ttl),
                (keys::CACHE_L2_TTL, policy.l2_ttl),
            ] {
                if ttl.is_some_and(|t| t.is_zero()) {
                    return Err(persistence_core::Error::config(format!(
                        "cache.{path}.{key} must be greater than zero"
                    )));
                }
            }
            // The rules live with the cache layer's ReadPolicy (defined once).
            policy.read_policy().validate().map_err(|e| {
                let rule = e.message().trim_start_matches("cache ");
                persistence_core::Error::config(format!("cache.{path}.{rule}"))
            })?;
            if policy.l1_max_bytes == Some(0) {
                return Err(persistence_core::Error::config(format!(
                    "cache.{path}.{} must be greater than zero",
                    keys::CACHE_L1_MAX_BYTES
                )));
            }
            if policy.read_policy().lease.is_some() && policy.l2.is_none() && !policy.disabled {
                return Err(persistence_core::Error::config(format!(
                    "cache.{path}.{} is on but cache.{path}.l2 is not set: the lease lives in the L2 redis",
                    keys::CACHE_LEASE
                )));
            }
            if policy.backplane == Some(true) && policy.l2.is_none() && !policy.disabled {
                return Err(persistence_core::Error::config(format!(
                    "cache.{path}.backplane is true but cache.{path}.l2 is not set: the backplane runs over the L2 redis"
                )));
            }
            if let Some(l2) = &policy.l2 {
                match self.databases.get(l2) {
                    Some(db) if db.kind == DatabaseKind::Redis => {}
                    Some(db) => {
                        return Err(persistence_core::Error::config(format!(
                            "cache.{path}.l2 names `{l2}`, a {} database; it must be kind redis",
                            db.kind.name()
                        )));
                    }
                    None => {
                        return Err(persistence_core::Error::config(format!(
                            "cache.{path}.l2 names `{l2}`, which is not in databases"
                        )));
                    }
                }
            }
        }
        if let Some(registry) = &self.registry {
            let name = registry.database.as_deref().unwrap_or("main");
            match self.databases.get(name).map(|db| db.kind) {
                Some(DatabaseKind::Postgres | DatabaseKind::Sqlite) => {}
                Some(kind) => {
                    return Err(persistence_core::Error::config(format!(
                        "registry.database names `{name}`, a {} database; it must be kind postgres or sqlite",
                        kind.name()
                    )));
                }
                None => {
                    return Err(persistence_core::Error::config(format!(
                        "registry.database names `{name}`, which is not in databases"
                    )));
                }
            }
            if registry.max_open_pools == Some(0) {
                return Err(persistence_core::Error::config(
                    "registry.max_open_pools must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

/// The `entities` key: entity names (identifiers), each listed once in all
/// the databases, in a database that stores entities (not Redis).
fn validate_entities(
    name: &str,
    db: &DatabaseConfig,
    all: &std::collections::BTreeMap<String, DatabaseConfig>,
) -> persistence_core::Result<()> {
    let at = format!("databases.{name}.{}", keys::ENTITIES);
    if db.entities.is_empty() {
        return Ok(());
    }
    if db.kind == DatabaseKind::Redis {
        return Err(persistence_core::Error::config(format!(
            "{at}: a redis database is a cache, not an entity store; list the entities under the database that stores them"
        )));
    }
    for (i, entity) in db.entities.iter().enumerate() {
        persistence_core::entity::validate_identifier(entity)
            .map_err(|e| persistence_core::Error::config(format!("{at}[{i}]: {}", e.message())))?;
        if db.entities[..i].contains(entity) {
            return Err(persistence_core::Error::config(format!(
                "{at} lists `{entity}` twice"
            )));
        }
        if let Some((other, _)) = all
            .iter()
            .find(|(o, d)| o.as_str() != name && d.entities.contains(entity))
        {
            return Err(persistence_core::Error::config(format!(
                "entity `{entity}` is listed in both databases.{name}.{e} and databases.{other}.{e}: an entity lives in one database",
                e = keys::ENTITIES
            )));
        }
    }
    Ok(())
}

/// The `cluster` key: kind redis only, instead of `url`, every node a
/// `redis://` or `rediss://` URL (one scheme for all).
fn validate_cluster(name: &str, db: &DatabaseConfig) -> persistence_core::Result<()> {
    let err = |msg: String| Err(persistence_core::Error::config(msg));
    let at = format!("databases.{name}.{}", keys::CLUSTER);
    if db.cluster.is_empty() {
        return Ok(());
    }
    if db.kind != DatabaseKind::Redis {
        return err(format!(
            "{at} applies to kind redis only, not {}",
            db.kind.name()
        ));
    }
    if db.url.is_some() {
        return err(format!(
            "databases.{name}: set {} (one server) or {} (a Redis Cluster), not both",
            keys::URL,
            keys::CLUSTER
        ));
    }
    let tls = |u: &Secret| {
        u.expose()
            .get(..9)
            .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"))
    };
    for (i, node) in db.cluster.iter().enumerate() {
        let u = node.expose();
        let plain = u
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("redis://"));
        if !plain && !tls(node) {
            return err(format!(
                "{at}[{i}] ({node}) is not a redis node URL: expected it to start with redis:// or rediss://"
            ));
        }
        if tls(node) != tls(&db.cluster[0]) {
            return err(format!(
                "{at}[{i}] ({node}): every node URL must use the same scheme (redis:// or rediss://)"
            ));
        }
    }
    Ok(())
}

/// The `tls` section: which kinds take it and, for Redis, what it requires.
fn validate_tls(
    name: &str,
    kind: DatabaseKind,
    tls: &super::TlsSettings,
    url: Option<&str>,
) -> persistence_core::Result<()> {
    let err = |msg: String| Err(persistence_core::Error::config(msg));
    let at = format!("databases.{name}.{}", keys::TLS);
    #[cfg(not(feature = "redis"))]
    let _ = url;
    match kind {
        DatabaseKind::Redis => {
            if tls.mode != "verify-full" {
                return err(format!(
                    "{at}.{}: redis connections always verify the server certificate and host name (verify-full); `{}` is not supported",
                    keys::TLS_MODE,
                    tls.mode
                ));
            }
            // (Without the `redis` feature a redis database fails check_compiled first.)
            #[cfg(feature = "redis")]
            if url.is_some_and(|u| !persistence_cache::is_tls_url(u)) {
                return err(format!("{at} needs a rediss:// url"));
            }
            if tls.client_cert.is_some() != tls.client_key.is_some() {
                return err(format!(
                    "{at}.{} and {at}.{} go together",
                    keys::TLS_CLIENT_CERT,
                    keys::TLS_CLIENT_KEY
                ));
            }
            Ok(())
        }
        DatabaseKind::Postgres => {
            if tls.client_cert.is_some() || tls.client_key.is_some() {
                return err(format!(
                    "{at}.{} / {}: client certificates are supported for kind redis only",
                    keys::TLS_CLIENT_CERT,
                    keys::TLS_CLIENT_KEY
                ));
            }
            Ok(())
        }
        other => err(format!(
            "{at} applies to kinds postgres and redis, not {} (MongoDB takes TLS options in its URL)",
            other.name()
        )),
    }
}
