//! A Redis key prefix of one's own on the Redis Cluster of
//! `REDIS_CLUSTER_URL` (comma-separated node URLs, as `scripts/services env`
//! prints them).

use persistence_core::conformance::services::services_required;

use crate::TestRedis;

/// The environment variable listing the cluster's node URLs (comma-separated).
pub const REDIS_CLUSTER_URL: &str = "REDIS_CLUSTER_URL";

/// A fresh key prefix on a Redis Cluster; every key under `{prefix}:` is
/// deleted from every listed node when this value is dropped (list every
/// master in `REDIS_CLUSTER_URL` for a complete cleanup).
#[derive(Debug)]
pub struct TestRedisCluster {
    nodes: Vec<String>,
    prefix: String,
    _cleanup: Vec<TestRedis>,
}

impl TestRedisCluster {
    /// A fresh prefix on the cluster of `REDIS_CLUSTER_URL`.
    ///
    /// `None` when the variable is unset or its first node does not answer,
    /// outside CI (`SKIPPED` is printed; return early). With `CI=true` or
    /// `PERSISTENCE_REQUIRE_SERVICES=1` that panics with a clear message.
    pub fn from_env(tag: &str) -> Option<TestRedisCluster> {
        let nodes: Vec<String> = std::env::var(REDIS_CLUSTER_URL)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let reachable = nodes.first().is_some_and(|n| answers(n));
        if reachable {
            return Some(Self::at(&nodes, tag));
        }
        let why = if nodes.is_empty() {
            format!("{REDIS_CLUSTER_URL} is not set")
        } else {
            format!("the first node of {REDIS_CLUSTER_URL} does not answer")
        };
        assert!(
            !services_required(),
            "redis cluster: {why}; CI=true / PERSISTENCE_REQUIRE_SERVICES=1 make this a failure \
             (`scripts/services up` starts one, `eval \"$(scripts/services env)\"` exports it)"
        );
        eprintln!("SKIPPED: redis cluster: {why}");
        None
    }

    /// A fresh prefix on the cluster of `nodes` (no skipping).
    pub fn at(nodes: &[String], tag: &str) -> TestRedisCluster {
        let prefix = TestRedis::unique_prefix(tag);
        TestRedisCluster {
            nodes: nodes.to_vec(),
            _cleanup: nodes.iter().map(|n| TestRedis::adopt(n, &prefix)).collect(),
            prefix,
        }
    }

    /// The node URLs.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The prefix (`t`, the tag and 12 hex digits).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

fn answers(url: &str) -> bool {
    use std::net::{TcpStream, ToSocketAddrs};
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    hostport.to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|a| TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok())
    })
}
