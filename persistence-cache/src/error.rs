//! The error map: Redis and pool errors onto [`persistence_core::ErrorKind`],
//! by error class (never by message text), keeping the driver error as source.
//!
//! | error | kind |
//! |---|---|
//! | I/O: refused, reset, EOF, broken pipe, aborted, not connected; unparsable reply | `Unavailable` (retryable) |
//! | I/O time-out | `Timeout` |
//! | server `LOADING`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `READONLY`; no cluster/sentinel node | `Unavailable` (retryable) |
//! | pool: wait / connect / recycle time-out, closed, post-create hook failed | `Unavailable` (retryable) |
//! | authentication failed, `NOPERM`, invalid client configuration, no runtime | `Config` |
//! | unexpected reply type | `Decode` |
//! | anything else (`ERR`, `EXECABORT`, `NOSCRIPT`, ...) | `Backend` |
//!
//! Messages name the class and the server's error code (`redis server error
//! LOADING`); the server's detail is included (Redis errors name commands
//! and keys, never a stored value or a password).

use deadpool_redis::redis::{ErrorKind as RedisKind, RedisError, ServerErrorKind};
use deadpool_redis::{PoolError, TimeoutType};
use persistence_core::Error;

fn classify(e: &RedisError) -> Error {
    let code = e.code().unwrap_or("");
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    if e.is_timeout() {
        return Error::timeout("redis did not answer in time (I/O time-out)");
    }
    if e.is_connection_refusal() {
        return Error::unavailable("redis refused the connection");
    }
    if e.is_connection_dropped() || e.is_io_error() {
        return Error::unavailable("the connection to redis failed or was closed");
    }
    match e.kind() {
        RedisKind::Parse => {
            Error::unavailable("redis sent a reply that cannot be parsed (connection garbled)")
        }
        RedisKind::ClusterConnectionNotFound
        | RedisKind::MasterNameNotFoundBySentinel
        | RedisKind::NoValidReplicasFoundBySentinel
        | RedisKind::EmptySentinelList => {
            Error::unavailable(format!("no redis node to talk to ({:?})", e.kind()))
        }
        RedisKind::AuthenticationFailed => {
            Error::config("redis authentication failed (check the URL's user and password)")
        }
        RedisKind::InvalidClientConfig => Error::config("invalid redis client configuration"),
        RedisKind::UnexpectedReturnType => {
            Error::decode(format!("unexpected reply type from redis{detail}"))
        }
        RedisKind::Server(s) => match s {
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly => {
                Error::unavailable(format!("redis server error {code}{detail}"))
            }
            ServerErrorKind::NoPerm => Error::config(format!("redis server error {code}{detail}")),
            _ => Error::backend(format!("redis server error {code}{detail}")),
        },
        other => Error::backend(format!("redis error ({other:?}){detail}")),
    }
}

/// Map a Redis error.
pub(crate) fn map_redis(e: RedisError) -> Error {
    classify(&e).with_source(e)
}

/// Map a pool error.
pub(crate) fn map_pool(e: PoolError) -> Error {
    match e {
        PoolError::Backend(e) => map_redis(e),
        PoolError::Timeout(t) => Error::unavailable(match t {
            TimeoutType::Wait => {
                "no redis connection became free in time (pool exhausted or redis unreachable)"
            }
            TimeoutType::Create => "connecting to redis timed out",
            TimeoutType::Recycle => "checking a pooled redis connection timed out",
        }),
        PoolError::Closed => Error::unavailable("the redis connection pool is closed"),
        PoolError::NoRuntimeSpecified => {
            Error::config("the redis pool has no async runtime configured")
        }
        other @ PoolError::PostCreateHook(_) => {
            Error::unavailable("setting up a new redis connection failed").with_source(other)
        }
    }
}

/// The error of an L2 operation that exceeded its time budget.
pub(crate) fn elapsed() -> Error {
    Error::timeout("redis operation exceeded the cache's L2 timeout")
}

#[cfg(test)]
mod tests {
    use std::io;

    use persistence_core::ErrorKind as K;

    use super::*;

    /// Every Redis and pool error class that can be built, and its kind.
    #[test]
    fn redis_errors_table() {
        let io = |k: io::ErrorKind| RedisError::from(io::Error::from(k));
        let kind = |k: RedisKind| RedisError::from((k, "test"));
        #[rustfmt::skip]
        let table: Vec<(&str, RedisError, K, bool)> = vec![
            ("refused", io(io::ErrorKind::ConnectionRefused), K::Unavailable, true),
            ("reset", io(io::ErrorKind::ConnectionReset), K::Unavailable, true),
            ("eof", io(io::ErrorKind::UnexpectedEof), K::Unavailable, true),
            ("broken pipe", io(io::ErrorKind::BrokenPipe), K::Unavailable, true),
            ("aborted", io(io::ErrorKind::ConnectionAborted), K::Unavailable, true),
            ("not connected", io(io::ErrorKind::NotConnected), K::Unavailable, true),
            ("other io", io(io::ErrorKind::Other), K::Unavailable, true),
            ("io kind", kind(RedisKind::Io), K::Unavailable, true),
            ("io timed out", io(io::ErrorKind::TimedOut), K::Timeout, true),
            ("parse", kind(RedisKind::Parse), K::Unavailable, true),
            ("cluster node missing", kind(RedisKind::ClusterConnectionNotFound), K::Unavailable, true),
            ("sentinel empty", kind(RedisKind::EmptySentinelList), K::Unavailable, true),
            ("LOADING", kind(RedisKind::Server(ServerErrorKind::BusyLoading)), K::Unavailable, true),
            ("TRYAGAIN", kind(RedisKind::Server(ServerErrorKind::TryAgain)), K::Unavailable, true),
            ("CLUSTERDOWN", kind(RedisKind::Server(ServerErrorKind::ClusterDown)), K::Unavailable, true),
            ("MASTERDOWN", kind(RedisKind::Server(ServerErrorKind::MasterDown)), K::Unavailable, true),
            ("READONLY", kind(RedisKind::Server(ServerErrorKind::ReadOnly)), K::Unavailable, true),
            ("NOPERM", kind(RedisKind::Server(ServerErrorKind::NoPerm)), K::Config, false),
            ("auth", kind(RedisKind::AuthenticationFailed), K::Config, false),
            ("client config", kind(RedisKind::InvalidClientConfig), K::Config, false),
            ("return type", kind(RedisKind::UnexpectedReturnType), K::Decode, false),
            ("ERR", kind(RedisKind::Server(ServerErrorKind::ResponseError)), K::Backend, false),
            ("NOSCRIPT", kind(RedisKind::Server(ServerErrorKind::NoScript)), K::Backend, false),
        ];
        for (what, e, k, retryable) in table {
            let mapped = map_redis(e);
            assert_eq!(mapped.kind(), &k, "{what}: {mapped}");
            assert_eq!(mapped.is_retryable(), retryable, "{what}: {mapped}");
            assert!(std::error::Error::source(&mapped).is_some(), "{what}");
        }
        #[rustfmt::skip]
        let pool: Vec<(&str, PoolError, K)> = vec![
            ("wait", PoolError::Timeout(TimeoutType::Wait), K::Unavailable),
            ("create", PoolError::Timeout(TimeoutType::Create), K::Unavailable),
            ("recycle", PoolError::Timeout(TimeoutType::Recycle), K::Unavailable),
            ("closed", PoolError::Closed, K::Unavailable),
            ("no runtime", PoolError::NoRuntimeSpecified, K::Config),
            ("backend reset", PoolError::Backend(io(io::ErrorKind::ConnectionReset)), K::Unavailable),
        ];
        for (what, e, k) in pool {
            let mapped = map_pool(e);
            assert_eq!(mapped.kind(), &k, "{what}: {mapped}");
        }
    }
}
