//! [`RedisClient`]: what the L2, the backplane's heartbeat and the health
//! checks talk to — a deadpool-redis pool of one server, or one Redis
//! Cluster connection — and [`Conn`], the connection either hands out
//! (a [`redis::aio::ConnectionLike`], so any command, pipeline or script
//! runs on it the same way).
//!
//! **Cluster.** redis' own cluster client (`cluster-async`), not
//! deadpool-redis' cluster pool: a cluster connection is already
//! multiplexed (one connection per node, shared by every caller), follows
//! `MOVED`/`ASK` redirections, refreshes the slot map and reconnects to a
//! node that comes back by itself, so a pool of them only multiplies
//! connections; and deadpool-redis' cluster manager cannot pass TLS
//! certificates (a private CA, a client certificate) on to the nodes it
//! discovers, which the cluster client's builder does. The connection is
//! made on first use (building a layer needs no reachable cluster) and then
//! kept. Commands are routed by their keys: a pipeline or a script goes
//! to the slot of its keys (every key of one must share a slot, see
//! [`crate::keys`]); a multi-key `MGET` / `DEL` is split by slot; `PING`
//! goes to every primary. The driver bounds every request (redirections,
//! retries and reconnects included) by its overall response time-out, the
//! layer's L2 time-out: an L2 lookup on the established connection arms
//! no timer of its own on top.
//!
//! **Primaries only, also after a failover.** redis' cluster client sends
//! `READONLY` on every node connection it opens (primaries included, in
//! case a caller routes reads to replicas). A primary ignores it — until a
//! failover turns it into a replica: from then on it *serves* the
//! connection's reads (and runs its scripts, whose writes then fail with
//! `READONLY`, an error the client neither retries nor refreshes its slot
//! map on) instead of answering `MOVED`. Reads would then lag the new
//! primary by the replication delay (an acknowledged invalidation could be
//! read around), and a slot only scripts write to (a tag's) would never be
//! writable again. The connections are therefore [`PrimaryOnly`]: the
//! `READONLY` is dropped before it is sent, so a demoted primary answers
//! `MOVED` to everything and the client follows the new slot map.
//!
//! **One server: one round trip per operation.** deadpool-redis' manager
//! checks every connection it hands out with `UNWATCH` + `PING`, a round
//! trip before each command: an L2 hit cost two. [`Checked`] connections
//! (our [`Fresh`] manager) are handed out unchecked while they are known
//! good — the last command on them was answered (a reply or a server
//! error) within `TRUSTED_FOR` (1 s) — and `PING`ed otherwise (never used, a
//! command failed or was abandoned by a time-out, or idle longer). A dead
//! connection thus still never outlives one failed command: it is pinged,
//! fails and is replaced. The pool is LIFO so that the connections in use
//! stay warm. (The layer never `WATCH`es, so no `UNWATCH` is needed.)

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};

use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster::ClusterClient;
use deadpool_redis::redis::cluster_async::{ClusterConnection, Connect};
use deadpool_redis::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use deadpool_redis::redis::{
    self, Arg, AsyncConnectionConfig, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Value,
};
use futures_util::FutureExt as _;
use persistence_core::Result;

use crate::error::{map_pool, map_redis};

/// A connection of a [`RedisClient`]: pooled (one server) or the shared
/// cluster connection. Run any command on it with `query_async`.
pub enum Conn {
    /// A pooled connection to one server (a pool given by the caller).
    Single(deadpool_redis::Connection),
    /// A pooled connection to one server (our own pool, see [`Fresh`]).
    Fresh(managed::Object<Fresh>),
    /// The cluster connection (a cheap clone of the shared one).
    Cluster(ClusterConnection<PrimaryOnly>),
}

/// A cluster node connection that never enters `READONLY` mode (see the
/// [module docs](self)): the cluster client's `READONLY` at connect is
/// answered `OK` here without being sent; everything else goes through.
#[derive(Clone)]
pub struct PrimaryOnly(MultiplexedConnection);

/// `READONLY` with no arguments: what the cluster client sends at connect.
fn is_readonly(cmd: &Cmd) -> bool {
    let mut args = cmd.args_iter();
    args.len() == 1
        && matches!(args.next(), Some(Arg::Simple(name)) if name.eq_ignore_ascii_case(b"READONLY"))
}

impl Connect for PrimaryOnly {
    fn connect_with_config<'a, T>(info: T, config: AsyncConnectionConfig) -> RedisFuture<'a, Self>
    where
        T: IntoConnectionInfo + Send + 'a,
    {
        MultiplexedConnection::connect_with_config(info, config)
            .map(|conn| conn.map(PrimaryOnly))
            .boxed()
    }
}

impl ConnectionLike for PrimaryOnly {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        if is_readonly(cmd) {
            return async { Ok(Value::Okay) }.boxed();
        }
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(cmd, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Fresh(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Fresh(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Fresh(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How long a connection whose last command was answered is handed out
/// again without a `PING` (see the [module docs](self)).
pub(crate) const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// A pooled connection to one server that knows whether its last command
/// was answered (see the [module docs](self)).
pub struct Checked {
    conn: MultiplexedConnection,
    /// The last command got an answer (a reply or a server error).
    answered: bool,
}

/// A reply, or an error the server sent: the connection works.
fn answered<T>(r: &redis::RedisResult<T>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => {
            !(e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                || e.is_unrecoverable_error())
        }
    }
}

impl ConnectionLike for Checked {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        // Cleared first: a command abandoned half-way (a time-out drops
        // the future) leaves the connection to be checked.
        self.answered = false;
        async move {
            let r = self.conn.req_packed_command(cmd).await;
            self.answered = answered(&r);
            r
        }
        .boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.answered = false;
        async move {
            let r = self.conn.req_packed_commands(cmd, offset, count).await;
            self.answered = answered(&r);
            r
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// The deadpool manager of [`Checked`] connections to one server.
#[derive(Debug)]
pub struct Fresh {
    client: redis::Client,
}

impl Fresh {
    pub(crate) fn new(client: redis::Client) -> Fresh {
        Fresh { client }
    }
}

impl managed::Manager for Fresh {
    type Type = Checked;
    type Error = redis::RedisError;

    async fn create(&self) -> redis::RedisResult<Checked> {
        let conn = self.client.get_multiplexed_async_connection().await?;
        Ok(Checked {
            conn,
            answered: true,
        })
    }

    async fn recycle(
        &self,
        conn: &mut Checked,
        metrics: &Metrics,
    ) -> RecycleResult<redis::RedisError> {
        if conn.answered && metrics.last_used() < TRUSTED_FOR {
            return Ok(());
        }
        let pong: String = redis::cmd("PING").query_async(conn).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RecycleError::message("unexpected PING reply"))
        }
    }
}

/// The cluster client and its connection, made on first use.
struct Cluster {
    client: ClusterClient,
    conn: tokio::sync::OnceCell<ClusterConnection<PrimaryOnly>>,
    /// The driver's own bound on every request of the connection (its
    /// overall response time-out: redirections, retries and reconnects
    /// included); None when unknown.
    bound: Option<Duration>,
}

#[derive(Clone)]
enum Inner {
    Pool(deadpool_redis::Pool),
    Fresh(managed::Pool<Fresh>),
    Cluster(Arc<Cluster>),
}

/// A Redis server (a deadpool-redis pool) or a Redis Cluster (one shared
/// cluster connection): see the [module docs](self). Cheap to clone.
/// Made by [`crate::RedisEndpoint::connect`], or from a pool with `From`.
#[derive(Clone)]
pub struct RedisClient {
    inner: Inner,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("cluster", &self.is_cluster())
            .finish_non_exhaustive()
    }
}

impl From<deadpool_redis::Pool> for RedisClient {
    fn from(pool: deadpool_redis::Pool) -> Self {
        RedisClient {
            inner: Inner::Pool(pool),
        }
    }
}

/// Occupancy of a [`RedisClient`]: of its pool, or of the cluster
/// connection (`max` 1, `size` 1 once connected, never waited for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Occupancy {
    pub(crate) max: usize,
    pub(crate) size: usize,
    pub(crate) idle: usize,
    pub(crate) waiting: usize,
}

impl Occupancy {
    fn of(s: managed::Status) -> Occupancy {
        Occupancy {
            max: s.max_size,
            size: s.size,
            idle: s.available,
            waiting: s.waiting,
        }
    }
}

impl RedisClient {
    pub(crate) fn fresh(pool: managed::Pool<Fresh>) -> RedisClient {
        RedisClient {
            inner: Inner::Fresh(pool),
        }
    }

    /// `bound`: the overall response time-out `client` was built with.
    pub(crate) fn cluster(client: ClusterClient, bound: Option<Duration>) -> RedisClient {
        RedisClient {
            inner: Inner::Cluster(Arc::new(Cluster {
                client,
                conn: tokio::sync::OnceCell::new(),
                bound,
            })),
        }
    }

    /// The cluster connection, once made, when the driver bounds each of
    /// its requests within `limit` (see [`Cluster`]): one command on it
    /// needs no time-out of its own. None on one server, before the first
    /// connection, or when the driver's bound is unknown or longer.
    pub(crate) fn bounded_cluster(
        &self,
        limit: Duration,
    ) -> Option<ClusterConnection<PrimaryOnly>> {
        match &self.inner {
            Inner::Cluster(c) if c.bound.is_some_and(|b| b <= limit) => c.conn.get().cloned(),
            _ => None,
        }
    }

    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner, Inner::Cluster(_))
    }

    /// A connection (unbounded: the caller bounds the wait).
    pub async fn get(&self) -> Result<Conn> {
        match &self.inner {
            Inner::Pool(pool) => pool.get().await.map(Conn::Single).map_err(map_pool),
            Inner::Fresh(pool) => pool.get().await.map(Conn::Fresh).map_err(map_pool),
            Inner::Cluster(c) => c
                .conn
                .get_or_try_init(|| c.client.get_async_generic_connection::<PrimaryOnly>())
                .await
                .map(|conn| Conn::Cluster(conn.clone()))
                .map_err(map_redis),
        }
    }

    /// `MGET keys` on the slot of `keys[0]`, as one command (every key must
    /// share that slot). On a cluster the client would take an `MGET` for a
    /// multi-slot one (split, sent and merged apart); routed explicitly it
    /// goes to the slot's primary at once (following `MOVED` like any other
    /// command), one command and one reply where a pipeline of `GET`s is
    /// several. On one server a plain `MGET`. Unbounded: the caller bounds it.
    pub(crate) async fn mget_one_slot(
        conn: &mut Conn,
        keys: &[&str],
    ) -> redis::RedisResult<Vec<Option<Vec<u8>>>> {
        match conn {
            Conn::Single(c) => mget_cmd(keys).query_async(c).await,
            Conn::Fresh(c) => mget_cmd(keys).query_async(&mut **c).await,
            Conn::Cluster(c) => Self::mget_cluster(c, keys).await,
        }
    }

    /// [`mget_one_slot`](Self::mget_one_slot) on the cluster connection.
    pub(crate) async fn mget_cluster(
        c: &mut ClusterConnection<PrimaryOnly>,
        keys: &[&str],
    ) -> redis::RedisResult<Vec<Option<Vec<u8>>>> {
        let Some(first) = keys.first() else {
            return Ok(Vec::new());
        };
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
            first,
            SlotAddr::Master,
        )));
        mget_reply(c.route_command(mget_cmd(keys), route).await?)
    }

    /// `PING` (on a cluster: every primary must answer), with errors
    /// classified as the cache's are (`Unavailable`, `Timeout`, `Config`
    /// for bad credentials; never the URL). Unbounded: the caller bounds it.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.get().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(map_redis)
    }

    pub(crate) fn occupancy(&self) -> Occupancy {
        match &self.inner {
            Inner::Pool(pool) => Occupancy::of(pool.status()),
            Inner::Fresh(pool) => Occupancy::of(pool.status()),
            Inner::Cluster(c) => {
                let open = usize::from(c.conn.initialized());
                Occupancy {
                    max: 1,
                    size: open,
                    idle: open,
                    waiting: 0,
                }
            }
        }
    }
}

/// `MGET keys`, its buffers sized at once.
fn mget_cmd(keys: &[&str]) -> Cmd {
    let bytes = keys.iter().map(|k| k.len()).sum::<usize>() + 4;
    let mut cmd = Cmd::with_capacity(keys.len() + 1, bytes);
    cmd.arg("MGET").arg(keys);
    cmd
}

/// An `MGET` reply as its values: the bulk strings taken as they are
/// (no conversion), anything else through the driver's conversion (whose
/// errors it keeps).
fn mget_reply(reply: Value) -> redis::RedisResult<Vec<Option<Vec<u8>>>> {
    match reply {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::Nil => Ok(None),
                Value::BulkString(b) => Ok(Some(b)),
                other => redis::FromRedisValue::from_redis_value(other).map_err(Into::into),
            })
            .collect(),
        other => redis::FromRedisValue::from_redis_value(other).map_err(Into::into),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bare_readonly_is_dropped() {
        assert!(is_readonly(&redis::cmd("READONLY")));
        assert!(is_readonly(&redis::cmd("readonly")));
        assert!(!is_readonly(&redis::cmd("READWRITE")));
        assert!(!is_readonly(redis::cmd("GET").arg("READONLY")));
        assert!(!is_readonly(redis::cmd("READONLY").arg("x")));
    }
}
