//! Where a Redis URL (and its TLS settings) becomes a client or a pool: the
//! one place the L2 pool, the backplane's subscriber and the manager's health
//! check connect through, so plain and `rediss://` connections behave alike.
//!
//! TLS uses rustls (redis' `tls-rustls`). A `rediss://` URL without
//! [`RedisTls`] trusts the system's root certificates; with
//! [`RedisTls::root_cert`] it trusts that CA file instead (a private CA, a
//! self-signed server). The server name checked is the URL's host. A client
//! certificate and key (mutual TLS) are optional.

use std::path::{Path, PathBuf};
use std::time::Duration;

use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use persistence_core::error::redact_url;
use persistence_core::{Error, Result};
use redis::{IntoConnectionInfo as _, TlsCertificates};

/// TLS settings of a Redis connection (files in PEM format).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// CA certificate(s) to trust instead of the system's roots.
    pub root_cert: Option<PathBuf>,
    /// Client certificate for mutual TLS (with `client_key`).
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key.
    pub client_key: Option<PathBuf>,
}

/// A Redis server to connect to: its URL and, for `rediss://`, TLS
/// settings. `Debug` shows the URL without its password.
#[derive(Clone)]
pub struct RedisEndpoint {
    url: String,
    /// Loaded when the endpoint is built, so a missing file is a `Config`
    /// error up front rather than a connection failure later.
    certs: Option<TlsCertificates>,
}

impl std::fmt::Debug for RedisEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEndpoint")
            .field("url", &redact_url(&self.url))
            .field("custom_tls", &self.certs.is_some())
            .finish()
    }
}

fn read_pem(what: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::config(format!(
            "redis tls.{what}: cannot read {}: {e}",
            path.display()
        ))
    })
}

/// Whether `url` asks for TLS (`rediss://`, any case).
pub fn is_tls_url(url: &str) -> bool {
    url.get(..9)
        .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"))
}

impl RedisEndpoint {
    /// The server at `url` (`redis://`, or `rediss://` with the system's roots).
    pub fn new(url: impl Into<String>) -> Self {
        RedisEndpoint {
            url: url.into(),
            certs: None,
        }
    }

    /// The server at `url` with TLS settings: `url` must be `rediss://`, and
    /// the files are read now (`Config` errors name the setting and file).
    pub fn with_tls(url: impl Into<String>, tls: &RedisTls) -> Result<Self> {
        let url = url.into();
        if !is_tls_url(&url) {
            return Err(Error::config(format!(
                "redis tls settings need a rediss:// url, not {}",
                redact_url(&url)
            )));
        }
        let client_tls = match (&tls.client_cert, &tls.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read_pem("client_cert", cert)?,
                client_key: read_pem("client_key", key)?,
            }),
            _ => {
                return Err(Error::config(
                    "redis tls.client_cert and tls.client_key go together",
                ));
            }
        };
        let root_cert = tls
            .root_cert
            .as_deref()
            .map(|p| read_pem("root_cert", p))
            .transpose()?;
        Ok(RedisEndpoint {
            url,
            certs: Some(TlsCertificates {
                client_tls,
                root_cert,
            }),
        })
    }

    /// The URL as given (may contain a password: never log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client for this endpoint (no connection yet).
    pub(crate) fn client(&self) -> Result<redis::Client> {
        let invalid = |e: redis::RedisError| {
            // The driver's message may echo the URL: keep only its category.
            Error::config(format!(
                "invalid redis url {} ({:?})",
                redact_url(&self.url),
                e.kind()
            ))
        };
        if is_tls_url(&self.url) {
            ensure_crypto_provider();
        }
        match &self.certs {
            None => redis::Client::open(self.url.as_str()).map_err(invalid),
            Some(certs) => {
                let info = self.url.as_str().into_connection_info().map_err(invalid)?;
                redis::Client::build_with_tls(info, certs.clone()).map_err(|e| {
                    Error::config(format!(
                        "redis tls settings for {}: {}",
                        redact_url(&self.url),
                        e.detail().unwrap_or("unusable certificate or key")
                    ))
                })
            }
        }
    }

    /// A pool of `size` multiplexed connections, every wait bounded by `timeout`.
    pub fn pool(&self, size: usize, timeout: Duration) -> Result<Pool> {
        let client = self.client()?;
        let manager =
            deadpool_redis::Manager::new(client.get_connection_info().clone()).map_err(|e| {
                Error::config(format!(
                    "invalid redis url {} ({:?})",
                    redact_url(&self.url),
                    e.kind()
                ))
            })?;
        let mut config = PoolConfig::new(size.max(1));
        config.timeouts = Timeouts {
            wait: Some(timeout),
            create: Some(timeout),
            recycle: Some(timeout),
        };
        Pool::builder(manager)
            .config(config)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::config(format!("redis pool for {}: {e}", redact_url(&self.url))))
    }
}

/// rustls needs a process-wide crypto provider. With only `ring` compiled in
/// it is found on its own; when an application also compiles in another
/// provider and has not chosen one, install `ring` so that connecting cannot
/// panic. An application that installs its own provider first keeps it.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Lost race with another installer: theirs stands, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
