//! Locating the servers tests run against.
//!
//! `DATABASE_URL`, `MONGODB_URL` and `REDIS_URL` win when set; otherwise the
//! local defaults that `scripts/services up` provides. When the server does
//! not answer, tests fail with a clear message if `CI=true` or
//! `PERSISTENCE_REQUIRE_SERVICES=1`, and otherwise are reported as skipped
//! by the caller (which must say so on stderr).

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A service the test suites use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// PostgreSQL (`DATABASE_URL`).
    Postgres,
    /// MongoDB or a wire-compatible server (`MONGODB_URL`).
    Mongo,
    /// Redis (`REDIS_URL`).
    Redis,
    /// PostgreSQL with the pgvector extension installed (`VECTOR_DATABASE_URL`;
    /// `scripts/services` runs one on 127.0.0.1:5433).
    PgVector,
}

impl Service {
    /// The environment variable that overrides the default URL.
    pub fn env_var(self) -> &'static str {
        match self {
            Service::Postgres => "DATABASE_URL",
            Service::Mongo => "MONGODB_URL",
            Service::Redis => "REDIS_URL",
            Service::PgVector => "VECTOR_DATABASE_URL",
        }
    }
    /// The local default URL.
    pub fn default_url(self) -> &'static str {
        match self {
            Service::Postgres => "postgres://postgres@127.0.0.1:5432/postgres",
            Service::Mongo => "mongodb://127.0.0.1:27017/?directConnection=true",
            Service::Redis => "redis://127.0.0.1:6379",
            Service::PgVector => "postgres://postgres@127.0.0.1:5433/postgres",
        }
    }
}

/// True when a missing service must fail the test run.
pub fn services_required() -> bool {
    let on = |k: &str| {
        std::env::var(k)
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false)
    };
    on("CI") || on("PERSISTENCE_REQUIRE_SERVICES")
}

fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // First host of a seed list.
    let hostport = hostport.split(',').next()?;
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (h, p.parse().ok()?),
        _ => (hostport, 0),
    };
    Some((host.trim_matches(['[', ']']).to_string(), port))
}

/// The URL of `service` if it answers a TCP connect within two seconds.
///
/// When it does not answer: panics with a clear message if
/// [`services_required`], else prints a `SKIPPED` line to stderr and
/// returns `None` (the caller then returns early).
pub fn url(service: Service) -> Option<String> {
    let url =
        std::env::var(service.env_var()).unwrap_or_else(|_| service.default_url().to_string());
    let reachable = host_port(&url).is_some_and(|(host, port)| {
        let port = if port == 0 {
            match service {
                Service::Postgres | Service::PgVector => 5432,
                Service::Mongo => 27017,
                Service::Redis => 6379,
            }
        } else {
            port
        };
        (host.as_str(), port)
            .to_socket_addrs()
            .map(|addrs| {
                addrs
                    .into_iter()
                    .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
            })
            .unwrap_or(false)
    });
    if reachable {
        return Some(url);
    }
    let msg = format!(
        "{service:?} is not reachable (set {} or run `scripts/services up`)",
        service.env_var()
    );
    if services_required() {
        panic!("{msg}; CI=true / PERSISTENCE_REQUIRE_SERVICES=1 make this a failure");
    }
    eprintln!("SKIPPED (service missing, not a pass under CI): {msg}");
    None
}

/// A short random suffix for per-test databases, schemas and key prefixes.
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn parses_hosts() {
        assert_eq!(
            host_port("postgres://u:p@db:5433/x"),
            Some(("db".into(), 5433))
        );
        assert_eq!(
            host_port("redis://127.0.0.1:6379"),
            Some(("127.0.0.1".into(), 6379))
        );
        assert_eq!(
            host_port("mongodb://a:27017,b:27018/?replicaSet=rs"),
            Some(("a".into(), 27017))
        );
        assert_eq!(
            host_port("mongodb://localhost/db"),
            Some(("localhost".into(), 0))
        );
    }
}
