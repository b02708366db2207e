//! A Redis key prefix of one's own.

use persistence_core::error::redact_url;
use persistence_core::{Error, Result};
use redis::aio::MultiplexedConnection;

use crate::cleanup::{CleanupFuture, run_blocking};
use crate::services::{self, Service};

/// A fresh key prefix; every key under `{prefix}:` is deleted when this
/// value is dropped (also when the test panics) or by [`TestRedis::cleanup`].
///
/// Cleanup walks the keys with `SCAN MATCH {prefix}:*` (never `KEYS`) and
/// deletes them in batches. Give the prefix to the code under test, e.g.
/// `CacheLayer::builder().prefix(redis.prefix()).redis_url(redis.url())`.
///
/// ```no_run
/// # async fn demo() {
/// use persistence_testing::TestRedis;
/// let Some(redis) = TestRedis::new().await else { return }; // SKIPPED
/// let key = redis.key("greeting"); // "{prefix}:greeting"
/// # let _ = key;
/// # }
/// ```
pub struct TestRedis {
    url: String,
    prefix: String,
    cleaned: bool,
}

impl std::fmt::Debug for TestRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRedis")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl TestRedis {
    /// A fresh prefix on the server of `REDIS_URL` (or the local default).
    ///
    /// `None` when the server is missing outside CI (`SKIPPED` is printed;
    /// return early). With `CI=true` or `PERSISTENCE_REQUIRE_SERVICES=1` a
    /// missing server panics with a clear message.
    pub async fn new() -> Option<TestRedis> {
        Self::tagged("").await
    }

    /// Like [`TestRedis::new`], with `tag` (ASCII letters, digits and `_`
    /// kept, others dropped) in the prefix to tell tests apart in `MONITOR`.
    pub async fn tagged(tag: &str) -> Option<TestRedis> {
        let url = services::url(Service::Redis)?;
        Some(Self::at(&url, tag))
    }

    /// A fresh prefix on the server at `url` (no skipping).
    pub fn at(url: &str, tag: &str) -> TestRedis {
        TestRedis {
            url: url.to_string(),
            prefix: Self::unique_prefix(tag),
            cleaned: false,
        }
    }

    /// Take over an existing `prefix` on the server at `url`: its keys are
    /// deleted when the value is dropped (for prefixes chosen elsewhere).
    pub fn adopt(url: &str, prefix: &str) -> TestRedis {
        TestRedis {
            url: url.to_string(),
            prefix: prefix.to_string(),
            cleaned: false,
        }
    }

    /// A fresh prefix string, `t` + `tag` (ASCII letters, digits and `_`
    /// kept) + 12 hex digits, without a server or cleanup.
    pub fn unique_prefix(tag: &str) -> String {
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        format!("t{tag}{}", services::unique_suffix())
    }

    /// The keys under `{prefix}:` on the server at `url` (SCAN), without
    /// owning the prefix.
    pub async fn keys_under(url: &str, prefix: &str) -> Result<Vec<String>> {
        let mut c = connect(url).await?;
        scan(&mut c, prefix).await
    }

    /// Delete the keys under `{prefix}:` on the server at `url` (SCAN +
    /// UNLINK), without owning the prefix.
    pub async fn delete_under(url: &str, prefix: &str) -> Result<()> {
        delete_all(url.to_string(), prefix.to_string()).await
    }

    /// The server URL (contains credentials when configured with them).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The prefix (`t`, the tag and 12 hex digits; no glob characters).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}:{name}`: a key that cleanup removes.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// A new multiplexed connection to the server.
    pub async fn connection(&self) -> Result<MultiplexedConnection> {
        connect(&self.url).await
    }

    /// The keys under `{prefix}:` now (SCAN).
    pub async fn keys(&self) -> Result<Vec<String>> {
        Self::keys_under(&self.url, &self.prefix).await
    }

    /// Delete every key under the prefix now and report errors (instead of
    /// printing them from `Drop`).
    pub async fn cleanup(mut self) -> Result<()> {
        self.cleaned = true;
        delete_all(self.url.clone(), self.prefix.clone()).await
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        run_blocking(
            format!("Redis prefix {prefix}"),
            move || -> CleanupFuture { Box::pin(delete_all(url, prefix)) },
        );
    }
}

fn map_redis(e: redis::RedisError) -> Error {
    let err = if e.is_timeout() {
        Error::timeout("Redis did not answer in time")
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        Error::unavailable("Redis is not reachable")
    } else {
        Error::backend("Redis refused a command")
    };
    err.with_source(e)
}

async fn connect(url: &str) -> Result<MultiplexedConnection> {
    let client =
        redis::Client::open(url).map_err(|e| Error::config("invalid Redis URL").with_source(e))?;
    client
        .get_multiplexed_async_connection()
        .await
        .map_err(map_redis)
}

async fn scan(c: &mut MultiplexedConnection, prefix: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(c)
            .await
            .map_err(map_redis)?;
        out.extend(keys);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

async fn delete_all(url: String, prefix: String) -> Result<()> {
    let mut c = connect(&url).await?;
    // Collect first, then delete (SCAN may return a key twice; UNLINK of a
    // missing key is harmless).
    let keys = scan(&mut c, &prefix).await?;
    // One key per UNLINK (pipelined): on a Redis Cluster node a multi-key
    // command must stay in one slot.
    for batch in keys.chunks(500) {
        let mut pipe = redis::pipe();
        for k in batch {
            pipe.cmd("UNLINK").arg(k).ignore();
        }
        let () = pipe.query_async(&mut c).await.map_err(map_redis)?;
    }
    Ok(())
}
