//! The error map: Redis and pool errors onto [`persistence_core::ErrorKind`],
//! by error class (never by message text), keeping the driver error as source.

use deadpool_redis::PoolError;
use deadpool_redis::redis::RedisError;
use persistence_core::Error;

/// Map a Redis error.
pub(crate) fn map_redis(e: RedisError) -> Error {
    let err = if e.is_timeout() {
        Error::timeout("redis command timed out")
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        Error::unavailable("redis is unreachable")
    } else {
        Error::backend(format!("redis error ({:?})", e.kind()))
    };
    err.with_source(e)
}

/// Map a pool error.
pub(crate) fn map_pool(e: PoolError) -> Error {
    match e {
        PoolError::Backend(e) => map_redis(e),
        PoolError::Timeout(_) => Error::timeout("timed out waiting for a redis connection"),
        other => Error::unavailable("no redis connection available").with_source(other),
    }
}

/// The error of an L2 operation that exceeded its time budget.
pub(crate) fn elapsed() -> Error {
    Error::timeout("redis operation exceeded the cache's L2 timeout")
}
