//! Where a Redis URL (and its TLS settings) becomes a client or a pool: the
//! one place the L2 pool, the backplane's subscriber and the manager's health
//! check connect through, so plain and `rediss://` connections behave alike.
//!
//! A cluster endpoint ([`RedisEndpoint::cluster`]) lists some of the
//! cluster's nodes (the client discovers the others); it connects to a
//! [`RedisClient`] over redis' cluster client (see [`crate::client`]), and
//! the backplane subscribes on one node at a time (see `backplane`).
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
use redis::cluster::ClusterClientBuilder;
use redis::{IntoConnectionInfo as _, TlsCertificates};

use crate::client::RedisClient;

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

/// A Redis server (or a Redis Cluster) to connect to: its URL (the
/// cluster's node URLs) and, for `rediss://`, TLS settings. `Debug` shows
/// the URLs without their passwords.
#[derive(Clone)]
pub struct RedisEndpoint {
    url: String,
    /// A cluster's node URLs (`url` is the first); empty for one server.
    nodes: Vec<String>,
    /// Loaded when the endpoint is built, so a missing file is a `Config`
    /// error up front rather than a connection failure later.
    certs: Option<TlsCertificates>,
}

impl std::fmt::Debug for RedisEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEndpoint")
            .field("url", &redact_url(&self.url))
            .field(
                "cluster",
                &self.nodes.iter().map(|n| redact_url(n)).collect::<Vec<_>>(),
            )
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
            nodes: Vec::new(),
            certs: None,
        }
    }

    /// A Redis Cluster reached through any of `nodes` (`redis://` or
    /// `rediss://` URLs of some of its nodes, all with the same scheme,
    /// user and password; the client discovers the others). `Config`
    /// error for an empty list or mixed schemes.
    pub fn cluster<S: Into<String>>(nodes: impl IntoIterator<Item = S>) -> Result<Self> {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        let Some(first) = nodes.first() else {
            return Err(Error::config("a redis cluster needs at least one node url"));
        };
        if nodes.iter().any(|n| is_tls_url(n) != is_tls_url(first)) {
            return Err(Error::config(
                "the redis cluster node urls mix redis:// and rediss://",
            ));
        }
        Ok(RedisEndpoint {
            url: first.clone(),
            nodes,
            certs: None,
        })
    }

    /// A Redis Cluster (see [`cluster`](Self::cluster)) over TLS with these
    /// settings: every node URL must be `rediss://`.
    pub fn cluster_with_tls<S: Into<String>>(
        nodes: impl IntoIterator<Item = S>,
        tls: &RedisTls,
    ) -> Result<Self> {
        let mut endpoint = Self::cluster(nodes)?;
        if !is_tls_url(&endpoint.url) {
            return Err(Error::config(format!(
                "redis tls settings need rediss:// urls, not {}",
                redact_url(&endpoint.url)
            )));
        }
        endpoint.certs = Some(load_certs(tls)?);
        Ok(endpoint)
    }

    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        !self.nodes.is_empty()
    }

    /// The URLs to connect to: the cluster's nodes, or the one server's URL
    /// (may contain a password: never log them).
    pub fn nodes(&self) -> &[String] {
        if self.nodes.is_empty() {
            std::slice::from_ref(&self.url)
        } else {
            &self.nodes
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
        Ok(RedisEndpoint {
            url,
            nodes: Vec::new(),
            certs: Some(load_certs(tls)?),
        })
    }

    /// The URL as given, for a cluster its first node's (may contain a
    /// password: never log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client for this endpoint (no connection yet); for a cluster, a
    /// plain client of its first node.
    pub(crate) fn client(&self) -> Result<redis::Client> {
        self.node_client(0)
    }

    /// A plain client of node `i` (modulo the node count; the server's URL
    /// for one server): what the backplane subscribes with.
    pub(crate) fn node_client(&self, i: usize) -> Result<redis::Client> {
        let nodes = self.nodes();
        let url = &nodes[i % nodes.len()];
        if is_tls_url(url) {
            ensure_crypto_provider();
        }
        match &self.certs {
            None => redis::Client::open(url.as_str()).map_err(|e| invalid(url, &e)),
            Some(certs) => {
                let info = url
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| invalid(url, &e))?;
                redis::Client::build_with_tls(info, certs.clone()).map_err(|e| {
                    Error::config(format!(
                        "redis tls settings for {}: {}",
                        redact_url(url),
                        e.detail().unwrap_or("unusable certificate or key")
                    ))
                })
            }
        }
    }

    /// Connect lazily: a pool of `size` multiplexed connections for one
    /// server (every wait bounded by `timeout`), or the cluster client
    /// (connection and response time-outs `timeout`; the connection is
    /// made on first use). `Config` error for an unusable URL.
    pub fn connect(&self, size: usize, timeout: Duration) -> Result<RedisClient> {
        if !self.is_cluster() {
            return self.fresh_pool(size, timeout).map(RedisClient::fresh);
        }
        if is_tls_url(&self.url) {
            ensure_crypto_provider();
        }
        let mut infos = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            infos.push(
                n.as_str()
                    .into_connection_info()
                    .map_err(|e| invalid(n, &e))?,
            );
        }
        let mut builder = ClusterClientBuilder::new(infos)
            .connection_timeout(timeout)
            .response_timeout(timeout);
        if let Some(certs) = &self.certs {
            builder = builder.certs(certs.clone());
        }
        let client = builder.build().map_err(|e| {
            Error::config(format!(
                "redis cluster {}: {:?}",
                redact_url(&self.url),
                e.kind()
            ))
        })?;
        // `response_timeout` also sets the overall time-out of a request.
        Ok(RedisClient::cluster(client, Some(timeout)))
    }

    /// The pool behind [`connect`](Self::connect) for one server: `size`
    /// multiplexed connections, handed out without a round trip while
    /// known good (see [`crate::client`]), every wait bounded by `timeout`.
    fn fresh_pool(
        &self,
        size: usize,
        timeout: Duration,
    ) -> Result<deadpool::managed::Pool<crate::client::Fresh>> {
        let manager = crate::client::Fresh::new(self.client()?);
        let mut config = PoolConfig::new(size.max(1));
        config.timeouts = Timeouts {
            wait: Some(timeout),
            create: Some(timeout),
            recycle: Some(timeout),
        };
        config.queue_mode = deadpool::managed::QueueMode::Lifo;
        deadpool::managed::Pool::builder(manager)
            .config(config)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::config(format!("redis pool for {}: {e}", redact_url(&self.url))))
    }

    /// A pool of `size` multiplexed connections, every wait bounded by
    /// `timeout` (one server; for a cluster, of its first node: use
    /// [`connect`](Self::connect)).
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

/// The driver's message may echo the URL: keep only its category.
fn invalid(url: &str, e: &redis::RedisError) -> Error {
    Error::config(format!(
        "invalid redis url {} ({:?})",
        redact_url(url),
        e.kind()
    ))
}

/// Read the PEM files of `tls` (`Config` errors name the setting and file).
fn load_certs(tls: &RedisTls) -> Result<TlsCertificates> {
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
    Ok(TlsCertificates {
        client_tls,
        root_cert,
    })
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
