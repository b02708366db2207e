//! The Redis (L2) side: lookups, generation-checked stores, invalidation.
//!
//! Coherence protocol (per entity type):
//! * `…:!gen` holds a random token replaced by every write; `…:!epoch` one
//!   replaced by `delete_many` and by a reset after an outage.
//! * An entity entry is stamped with the epoch token current when its load
//!   started; a query entry with the gen token. A lookup reads the entry and
//!   both tokens in one `MGET`; an entry whose stamp differs is dead.
//! * A loaded value is stored by a Lua script only if the gen token is still
//!   the one read before the load: a load that raced a write never stores
//!   its (possibly old) result (stale-set protection).
//! * A write replaces the gen token (and the epoch for `delete_many`), then
//!   deletes the written entities' keys, in one pipeline.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_redis::Pool;
use deadpool_redis::redis::{self, Script};
use persistence_core::Result;

use crate::client::{Conn, Occupancy, RedisClient};

use crate::error::{elapsed, map_pool, map_redis};

const SET_IF_GEN: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[2 * i - 2], 'PX', ARGV[2 * i - 1])
end
return 1
";

/// Write-through, before the write: register the writer (`ARGV[1]`) in
/// its in-flight hash `KEYS[1]` (the entry's, or the entity type's for a
/// write whose keys are not known up front), make it the hash's token
/// (`t`) and refresh the hash's lifetime; answer the hash's length, the
/// type hash's length and token (`KEYS[2]`, when it is another hash) and
/// the epoch token (`KEYS[3]`), created (as the gen token `KEYS[4]`) from
/// `ARGV[3]` / `ARGV[4]` when missing, as [`L2::init_tokens`] does. See
/// `crate::repository::through`.
const WRITE_BEGIN: &str = r"
redis.call('SET', KEYS[3], ARGV[3], 'NX', 'PX', ARGV[5])
redis.call('SET', KEYS[4], ARGV[4], 'NX', 'PX', ARGV[5])
redis.call('HSET', KEYS[1], ARGV[1], '1', 't', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local n = redis.call('HLEN', KEYS[1])
local tn = 0
local tt = ''
if KEYS[2] ~= KEYS[1] then
  tn = redis.call('HLEN', KEYS[2])
  tt = redis.call('HGET', KEYS[2], 't') or ''
end
return {n, tn, tt, redis.call('GET', KEYS[3]) or ''}
";

/// Write-through, after the write of one entry `KEYS[5]`: the row
/// (`ARGV[5]`, stamped with the epoch `ARGV[4]` read at the start) is
/// stored only when asked (`ARGV[2]` = 1: the writer was alone at its
/// start) and the entry's in-flight token is still the writer's own
/// (`ARGV[1]`: nobody started a write of it since, and no invalidation
/// poisoned it), the type's token is the one seen at the start (`ARGV[3]`:
/// no write of unknown keys started since) and the epoch has not moved;
/// otherwise the entry is deleted. Either way the writer leaves the
/// in-flight hash (deleted once empty), the gen token is replaced
/// (`ARGV[7]`, lifetime `ARGV[8]`) and the backplane message (`ARGV[9]`
/// channel, `ARGV[10]` message; single server only) published — the
/// invalidation of [`L2::invalidate`]. Answers 1 when the row was stored.
const WRITE_END: &str = r"
local through = 0
if ARGV[2] == '1' and redis.call('HGET', KEYS[1], 't') == ARGV[1]
   and (redis.call('HGET', KEYS[2], 't') or '') == ARGV[3]
   and redis.call('GET', KEYS[4]) == ARGV[4] then
  through = 1
end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) <= 1 then redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[3], ARGV[7], 'PX', ARGV[8])
if through == 1 then
  redis.call('SET', KEYS[5], ARGV[5], 'PX', ARGV[6])
else
  redis.call('DEL', KEYS[5])
end
if ARGV[9] then redis.call('PUBLISH', ARGV[9], ARGV[10]) end
return through
";

/// Write-through of a versioned entity (one round trip, no registration;
/// see `crate::repository::through`), after the write of entry `KEYS[5]`
/// returned the row at version `ARGV[1]`. `KEYS[1]` is the entry's
/// *version mark*: the highest version a write of it has ended with, or
/// `x` once an invalidation that is not such a write touched it (lifetime
/// `ARGV[5]`, refreshed by each numeric mark). When the mark is `x`, or
/// already as high (either a newer write ended first or the row is a new
/// one, deleted by a write of unknown keys and inserted again: versions
/// start over), the mark stays and the entry is deleted: the one thing
/// right in every such case. Otherwise the mark rises, and the row
/// (`ARGV[3]`, stamped with the epoch `ARGV[2]` this instance knew before
/// the write began) is stored when it was asked for, no write of unknown
/// keys is in flight (the type hash `KEYS[2]` holds no writer) and the
/// epoch `KEYS[4]` is still `ARGV[2]`; else the entry is deleted. Then, as
/// any write, the gen token is replaced (`ARGV[6]`, lifetime `ARGV[7]`)
/// and the backplane message (`ARGV[8]` channel, `ARGV[9]` message)
/// published. Answers `{stored (1/0), epoch token now}`.
const WRITE_END_VERSIONED: &str = r"
local through = 0
local h = redis.call('GET', KEYS[1])
local hn = h and tonumber(h)
local v = tonumber(ARGV[1])
local rises = not (h and (not hn or hn >= v))
if rises then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[5]) end
if rises and ARGV[3] ~= '' and redis.call('HLEN', KEYS[2]) <= 1
   and redis.call('GET', KEYS[4]) == ARGV[2] then
  redis.call('SET', KEYS[5], ARGV[3], 'PX', ARGV[4])
  through = 1
else
  redis.call('DEL', KEYS[5])
end
redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[7])
if ARGV[8] then redis.call('PUBLISH', ARGV[8], ARGV[9]) end
return {through, redis.call('GET', KEYS[4]) or ''}
";

/// The version mark of an entry key (see [`WRITE_END_VERSIONED`]).
pub(crate) fn version_key(key: &str) -> String {
    format!("{key}:!v")
}

/// Lifetime of an in-flight hash (see `crate::repository::through`): far
/// longer than any write should take; a writer slower than half of it
/// never writes through.
pub(crate) const IN_FLIGHT_TTL: Duration = Duration::from_secs(60);

/// The in-flight hash of an entry key (or of an entity type's base).
pub(crate) fn in_flight_key(key: &str) -> String {
    format!("{key}:!w")
}

/// What [`L2::write_begin`] answered.
#[derive(Debug)]
pub(crate) struct Begun {
    /// Length of the writer's in-flight hash (2: the token and itself only).
    pub len: i64,
    /// Length of the entity type's in-flight hash (0 or 1: no write of
    /// unknown keys in flight).
    pub type_len: i64,
    /// The type hash's token (empty: none).
    pub type_token: Vec<u8>,
    /// The epoch token as stored (empty: none).
    pub epoch: Vec<u8>,
}

/// Lifetime of the gen/epoch tokens (refreshed by every write). A token that
/// expires is replaced by a new random one, which only makes older entries dead.
const TOKEN_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// What one lookup found.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// The entries, in the order asked.
    pub values: Vec<Option<Vec<u8>>>,
    /// The gen token (None when not initialized yet).
    pub gen_token: Option<u64>,
    /// The epoch token.
    pub epoch: Option<u64>,
}

/// `PING` through `pool` (unbounded: the pool's own timeouts and the
/// caller's bound apply), with errors classified as the cache's are
/// (`Unavailable` "redis refused the connection", `Timeout`, `Config` for
/// bad credentials; never the URL). For health checks of a Redis pool.
pub async fn ping_pool(pool: &Pool) -> Result<()> {
    let mut conn = pool.get().await.map_err(map_pool)?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(drop)
        .map_err(map_redis)
}

/// The L2 client.
pub(crate) struct L2 {
    client: RedisClient,
    timeout: Duration,
    set_if_gen: Script,
    write_begin: Script,
    write_end: Script,
    write_end_versioned: Script,
    /// False after the last operation failed, true after one succeeded.
    up: AtomicBool,
}

impl std::fmt::Debug for L2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L2")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A gen/epoch token as stored (decimal text); None when absent or malformed.
pub(crate) fn token(v: Option<Vec<u8>>) -> Option<u64> {
    std::str::from_utf8(&v?).ok()?.parse().ok()
}

impl L2 {
    pub(crate) fn new(client: RedisClient, timeout: Duration) -> L2 {
        L2 {
            client,
            timeout,
            set_if_gen: Script::new(SET_IF_GEN),
            write_begin: Script::new(WRITE_BEGIN),
            write_end: Script::new(WRITE_END),
            write_end_versioned: Script::new(WRITE_END_VERSIONED),
            up: AtomicBool::new(true),
        }
    }

    /// The connection pool's (or cluster connection's) occupancy.
    pub(crate) fn pool_status(&self) -> Occupancy {
        self.client.occupancy()
    }

    /// True on a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.client.is_cluster()
    }

    /// True unless the last operation failed (optimistic before the first one).
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// `PING` through the pool under the time budget: the round trip.
    pub(crate) async fn ping(&self) -> Result<Duration> {
        let start = std::time::Instant::now();
        self.with_conn(
            |mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await },
        )
        .await?;
        Ok(start.elapsed())
    }

    /// `PUBLISH channel message`.
    pub(crate) async fn publish(&self, channel: &str, message: String) -> Result<()> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(message);
        self.with_conn(|mut c| async move { cmd.query_async::<i64>(&mut c).await })
            .await
            .map(drop)
    }

    /// Run `f` on a connection under the time budget (any command:
    /// `|mut c| async move { cmd.query_async(&mut c).await }`). On a cluster
    /// the command goes to the slot of its keys: every key of one pipeline or
    /// script must share a slot (see [`crate::keys`]).
    pub(crate) async fn with_conn<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let work = async {
            let conn = self.client.get().await?;
            f(conn).await.map_err(map_redis)
        };
        let out = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| elapsed())
            .and_then(|r| r);
        self.answered(out.is_ok());
        out
    }

    /// Record whether the last operation succeeded (written only when that
    /// changes: every L2 read passes here, and a store to the shared flag
    /// would move its cache line between the threads reading in parallel).
    fn answered(&self, ok: bool) {
        if self.up.load(Ordering::Relaxed) != ok {
            self.up.store(ok, Ordering::SeqCst);
        }
    }

    /// `MGET keys` on their slot, under the time budget: on an established
    /// cluster connection the driver's own bound (the same time-out, see
    /// [`RedisClient::bounded_cluster`]) is the budget, so no second timer
    /// is armed for it.
    async fn mget(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        let Some(mut conn) = self.client.bounded_cluster(self.timeout) else {
            return self
                .with_conn(|mut c| async move { RedisClient::mget_one_slot(&mut c, keys).await })
                .await;
        };
        let out = RedisClient::mget_cluster(&mut conn, keys)
            .await
            .map_err(map_redis);
        self.answered(out.is_ok());
        out
    }

    /// `MGET keys… gen epoch`: one command to the one slot they share (see
    /// [`RedisClient::mget_one_slot`]).
    pub(crate) async fn lookup(
        &self,
        keys: &[&str],
        gen_key: &str,
        epoch_key: &str,
    ) -> Result<Found> {
        if let [key] = keys {
            return Self::found(self.mget(&[key, gen_key, epoch_key]).await?, 1);
        }
        let mut all: Vec<&str> = Vec::with_capacity(keys.len() + 2);
        all.extend_from_slice(keys);
        all.push(gen_key);
        all.push(epoch_key);
        Self::found(self.mget(&all).await?, keys.len())
    }

    /// The reply of a lookup of `n` keys.
    fn found(mut raw: Vec<Option<Vec<u8>>>, n: usize) -> Result<Found> {
        if raw.len() != n + 2 {
            return Err(persistence_core::Error::backend(
                "redis answered MGET with the wrong number of values",
            ));
        }
        let epoch = token(raw.pop().flatten());
        let gen_token = token(raw.pop().flatten());
        Ok(Found {
            values: raw,
            gen_token,
            epoch,
        })
    }

    /// Create the tokens if missing (`SET NX` with fresh random values) and
    /// return the current ones.
    pub(crate) async fn init_tokens(&self, gen_key: &str, epoch_key: &str) -> Result<(u64, u64)> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(gen_key)
            .arg(fastrand::u64(..).to_string())
            .arg("NX")
            .arg("PX")
            .arg(TOKEN_TTL_MS)
            .ignore()
            .cmd("SET")
            .arg(epoch_key)
            .arg(fastrand::u64(..).to_string())
            .arg("NX")
            .arg("PX")
            .arg(TOKEN_TTL_MS)
            .ignore()
            .cmd("MGET")
            .arg(gen_key)
            .arg(epoch_key);
        let (tokens,): (Vec<Option<Vec<u8>>>,) = self
            .with_conn(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        let mut it = tokens.into_iter().map(token);
        match (it.next().flatten(), it.next().flatten()) {
            (Some(g), Some(e)) => Ok((g, e)),
            _ => Err(persistence_core::Error::backend(
                "redis did not keep the cache tokens",
            )),
        }
    }

    /// Store entries `(key, bytes, ttl)` only if the gen token is still `gen_token`.
    /// Returns false when a write intervened (nothing stored).
    pub(crate) async fn set_if_gen(
        &self,
        gen_key: &str,
        gen_token: u64,
        entries: &[(String, Vec<u8>, Duration)],
    ) -> Result<bool> {
        if entries.is_empty() {
            return Ok(true);
        }
        let mut inv = self.set_if_gen.prepare_invoke();
        inv.key(gen_key).arg(gen_token.to_string());
        for (k, v, ttl) in entries {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            inv.key(k.as_str()).arg(v.as_slice()).arg(ms);
        }
        let stored: i64 = self
            .with_conn(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        Ok(stored == 1)
    }

    /// Register writer `token` in the in-flight hash `own` (see
    /// [`WRITE_BEGIN`]); `type_hash` is the entity type's (same as `own`
    /// for a write of unknown keys).
    pub(crate) async fn write_begin(
        &self,
        own: &str,
        type_hash: &str,
        (gen_key, epoch_key): (&str, &str),
        token: u64,
    ) -> Result<Begun> {
        let mut inv = self.write_begin.prepare_invoke();
        inv.key(own)
            .key(type_hash)
            .key(epoch_key)
            .key(gen_key)
            .arg(token.to_string())
            .arg(IN_FLIGHT_TTL.as_millis().to_string())
            .arg(fastrand::u64(..).to_string())
            .arg(fastrand::u64(..).to_string())
            .arg(TOKEN_TTL_MS);
        let (len, type_len, type_token, epoch): (i64, i64, Vec<u8>, Vec<u8>) = self
            .with_conn(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        Ok(Begun {
            len,
            type_len,
            type_token,
            epoch,
        })
    }

    /// After the write of `key` by writer `token`, who saw the type hash's
    /// token `type_token` at its start (see [`WRITE_END`]): store `stored`
    /// (the epoch it is stamped with, its bytes, lifetime) when nothing
    /// overlapped, else delete the entry; replace the gen token and
    /// publish. True when the value was stored.
    pub(crate) async fn write_end(
        &self,
        key: &str,
        type_hash: &str,
        (gen_key, epoch_key): (&str, &str),
        (token, type_token): (u64, &[u8]),
        stored: Option<(&[u8], &[u8], Duration)>,
        publish: Option<(&str, String)>,
    ) -> Result<bool> {
        let own = in_flight_key(key);
        let mut inv = self.write_end.prepare_invoke();
        inv.key(own.as_str())
            .key(type_hash)
            .key(gen_key)
            .key(epoch_key)
            .key(key)
            .arg(token.to_string());
        match stored {
            Some((epoch, bytes, ttl)) => {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                inv.arg("1").arg(type_token).arg(epoch).arg(bytes).arg(ms);
            }
            None => {
                inv.arg("0").arg(type_token).arg("").arg("").arg(1);
            }
        }
        inv.arg(fastrand::u64(..).to_string()).arg(TOKEN_TTL_MS);
        let (inline, after) = if self.is_cluster() {
            (None, publish)
        } else {
            (publish, None)
        };
        if let Some((channel, msg)) = &inline {
            inv.arg(*channel).arg(msg.as_str());
        }
        let through: i64 = self
            .with_conn(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        if let Some((channel, msg)) = after {
            self.publish(channel, msg).await?;
        }
        Ok(through == 1)
    }

    /// After the write of `key` (a versioned entity) returned its row at
    /// `version`, without registering first (see [`WRITE_END_VERSIONED`]):
    /// store `stored` (its bytes and lifetime, stamped with `epoch`, the
    /// token this instance knew before the write began) when the rule
    /// allows, else delete the entry; replace the gen token and publish.
    /// Answers whether the row was stored and the epoch token now (None:
    /// none).
    pub(crate) async fn write_end_versioned(
        &self,
        key: &str,
        type_hash: &str,
        (gen_key, epoch_key): (&str, &str),
        (version, epoch): (i64, u64),
        stored: Option<(&[u8], Duration)>,
        publish: Option<(&str, String)>,
    ) -> Result<(bool, Option<u64>)> {
        let mark = version_key(key);
        let mut inv = self.write_end_versioned.prepare_invoke();
        inv.key(mark.as_str())
            .key(type_hash)
            .key(gen_key)
            .key(epoch_key)
            .key(key)
            .arg(version)
            .arg(epoch.to_string());
        match stored {
            Some((bytes, ttl)) => {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                inv.arg(bytes).arg(ms);
            }
            None => {
                inv.arg("").arg(1);
            }
        }
        inv.arg(IN_FLIGHT_TTL.as_millis().to_string())
            .arg(fastrand::u64(..).to_string())
            .arg(TOKEN_TTL_MS);
        let (inline, after) = if self.is_cluster() {
            (None, publish)
        } else {
            (publish, None)
        };
        if let Some((channel, msg)) = &inline {
            inv.arg(*channel).arg(msg.as_str());
        }
        let (through, now): (i64, Vec<u8>) = self
            .with_conn(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        if let Some((channel, msg)) = after {
            self.publish(channel, msg).await?;
        }
        Ok((through == 1, token(Some(now))))
    }

    /// After a write: replace the gen token (and the epoch when `all`), then
    /// delete `keys`, and publish the backplane message (in the same
    /// pipeline on one server; after it on a cluster).
    pub(crate) async fn invalidate(
        &self,
        gen_key: &str,
        epoch_key: Option<&str>,
        keys: &[String],
        publish: Option<(&str, String)>,
        unregister: Option<(&str, u64)>,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(gen_key)
            .arg(fastrand::u64(..).to_string())
            .arg("PX")
            .arg(TOKEN_TTL_MS)
            .ignore();
        if let Some(e) = epoch_key {
            pipe.cmd("SET")
                .arg(e)
                .arg(fastrand::u64(..).to_string())
                .arg("PX")
                .arg(TOKEN_TTL_MS)
                .ignore();
        }
        if !keys.is_empty() {
            pipe.cmd("DEL").arg(keys).ignore();
            // A write-through of these keys in flight must not store its
            // row after this invalidation (see `crate::repository::through`).
            let ttl = IN_FLIGHT_TTL.as_millis().to_string();
            for k in keys {
                let w = in_flight_key(k);
                pipe.cmd("HSET")
                    .arg(&w)
                    .arg("t")
                    .arg(fastrand::u64(..).to_string())
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&w)
                    .arg(&ttl)
                    .ignore()
                    // Nor one of a versioned entity (see `WRITE_END_VERSIONED`).
                    .cmd("SET")
                    .arg(version_key(k))
                    .arg("x")
                    .arg("PX")
                    .arg(&ttl)
                    .ignore();
            }
        }
        if let Some((w, token)) = unregister {
            pipe.cmd("HDEL").arg(w).arg(token.to_string()).ignore();
        }
        // A cluster routes a pipeline by its keys, and a channel name counts
        // as one: publish on its own, once the invalidation is acknowledged
        // (a receiver reloading from L2 must not find the old entry).
        let (inline, after) = if self.is_cluster() {
            (None, publish)
        } else {
            (publish, None)
        };
        if let Some((channel, msg)) = inline {
            pipe.cmd("PUBLISH").arg(channel).arg(msg).ignore();
        }
        self.with_conn(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await?;
        match after {
            Some((channel, msg)) => self.publish(channel, msg).await,
            None => Ok(()),
        }
    }

    /// Run a pipeline under the time budget.
    pub(crate) async fn query<T: redis::FromRedisValue + Send>(
        &self,
        pipe: redis::Pipeline,
    ) -> Result<T> {
        self.with_conn(|mut c| async move { pipe.query_async::<T>(&mut c).await })
            .await
    }

    /// Invoke a prepared script under the time budget.
    pub(crate) async fn invoke<T: redis::FromRedisValue + Send>(
        &self,
        inv: redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        self.with_conn(|mut c| async move { inv.invoke_async::<T>(&mut c).await })
            .await
    }
}
