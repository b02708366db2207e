//! Cross-process stampede protection: a short Redis lease per missing key
//! (memcache-style), turned on per entity type by [`Lease`](crate::Lease).
//!
//! In-process, concurrent misses of one key already share one load (the
//! single flight). Across processes, on an L2 miss:
//!
//! * **Acquire and look again, atomically.** One Lua script (`ACQUIRE`)
//!   does `SET lease token NX PX ttl` and then reads the entry and the
//!   gen/epoch tokens. The lease key is the entry key + `:!lease`
//!   (`Keys::lease`), so it lives in the entry's hash slot. The token is
//!   random per attempt. A holder stores its value (through `SET_IF_GEN`,
//!   see `crate::l2`) *before* it releases the lease, so whoever acquires
//!   a released lease sees the stored value in the same script and does
//!   not load again.
//! * **Holder** (acquired, no live entry): loads, stores through
//!   `SET_IF_GEN` with the gen token read by the script (stale-set
//!   protection is unchanged: a write since then refuses the store), then
//!   releases the lease with a compare-and-delete (`RELEASE`: `DEL` only if
//!   the key still holds its token, so a holder whose lease expired never
//!   deletes a successor's). A failed load releases at once, so the others
//!   do not wait for nothing. A holder that dies keeps nobody waiting
//!   longer than the lease's `PX`; a dropped holder (its readers gave up)
//!   releases from a spawned task.
//! * **Waiter** (another instance holds the lease): polls with the same
//!   script, backing off from 2 ms to 25 ms (jittered), until the entry is
//!   live (a hit: the holder's value), or it acquires the lease itself
//!   (the previous one expired or was released without a value: it loads),
//!   or twice the lease TTL has passed (it loads without a lease; the
//!   bound keeps a chain of stuck holders from stalling reads). Polling,
//!   not pub/sub: no subscriber connection per process, and an expired
//!   lease needs no message to be noticed.
//! * **A waiter with a stale value** (kept by the fail-safe, still current
//!   by the generation rules) serves it at once instead of waiting
//!   (`busy`); so does an eager refresh, whose value is still fresh.
//! * Entries read by waiters pass the same stamp check as any L2 read (an
//!   entry older than a write or `delete_many` is dead), and a write
//!   deletes the entry keys it touches, so a write during the lease never
//!   lets a waiter read a value older than it.
//!
//! Redis errors end the lease protocol for that read (it loads without a
//! lease and does not store in L2, as any read whose L2 failed).

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use deadpool_redis::redis::Script;
use persistence_core::{Error, Result};

use crate::l2::{Found, L2};

/// `SET lease token NX PX ttl`, then `MGET entry gen epoch`; returns
/// `[entry, gen, epoch, acquired]`.
const ACQUIRE: &str = r"
local got = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
local v = redis.call('MGET', KEYS[2], KEYS[3], KEYS[4])
if got then v[4] = 1 else v[4] = 0 end
return v
";

/// Delete the lease only if it still holds our token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

static ACQUIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ACQUIRE));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));

/// First and longest pause between two polls of a waiter.
const FIRST_POLL: Duration = Duration::from_millis(2);
const MAX_POLL: Duration = Duration::from_millis(25);

/// The keys one lease works on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseKeys<'a> {
    pub lease: &'a str,
    pub entry: &'a str,
    pub gen_key: &'a str,
    pub epoch_key: &'a str,
}

/// A lease this instance holds; release it with [`Held::release`] once the
/// value is stored (dropping it releases from a spawned task).
pub(crate) struct Held {
    l2: Arc<L2>,
    key: String,
    token: String,
    released: bool,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").field("key", &self.key).finish()
    }
}

impl Held {
    /// Compare-and-delete: a lease that expired and was taken over is left alone.
    pub(crate) async fn release(mut self) {
        self.released = true;
        release(&self.l2, &self.key, &self.token).await;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return; // it expires
        };
        let (l2, key, token) = (
            self.l2.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.token),
        );
        rt.spawn(async move { release(&l2, &key, &token).await });
    }
}

async fn release(l2: &L2, key: &str, token: &str) {
    let mut inv = RELEASE_SCRIPT.prepare_invoke();
    inv.key(key).arg(token);
    let out = l2
        .with_conn(|mut c| async move { inv.invoke_async::<i64>(&mut c).await })
        .await;
    if let Err(e) = out {
        tracing::debug!(error = %e, "cache lease release failed; it expires");
    }
}

/// What `ACQUIRE` answers: entry, gen token, epoch token, 1 if acquired.
type Acquired = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// One run of `ACQUIRE`: what it read, and the lease if it was taken.
async fn acquire(
    l2: &Arc<L2>,
    keys: LeaseKeys<'_>,
    ttl: Duration,
) -> Result<(Found, Option<Held>)> {
    let token = fastrand::u64(..).to_string();
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut inv = ACQUIRE_SCRIPT.prepare_invoke();
    inv.key(keys.lease)
        .key(keys.entry)
        .key(keys.gen_key)
        .key(keys.epoch_key)
        .arg(&token)
        .arg(ms);
    let (entry, gen_token, epoch, got): Acquired = l2
        .with_conn(|mut c| async move { inv.invoke_async(&mut c).await })
        .await?;
    let found = Found {
        values: vec![entry],
        gen_token: crate::l2::token(gen_token),
        epoch: crate::l2::token(epoch),
    };
    let held = (got == 1).then(|| Held {
        l2: l2.clone(),
        key: keys.lease.to_string(),
        token,
        released: false,
    });
    Ok((found, held))
}

/// How a leased miss ends.
#[derive(Debug)]
pub(crate) enum Outcome<V> {
    /// A live entry: stored by the holder, or just before the lease was taken.
    Value(V),
    /// This instance holds the lease: load, store with the tokens of
    /// `found`, then release. `waited`: it took over from another holder.
    Hold {
        held: Held,
        found: Found,
        waited: bool,
    },
    /// Another instance holds the lease and the caller has a value to serve
    /// meanwhile (`stale_ok`): serve it.
    Busy,
    /// Load without a lease: Redis failed (`error`; do not store in L2) or
    /// the wait bound passed (store with the tokens of `found`).
    Alone {
        found: Option<Found>,
        waited: bool,
        error: Option<Error>,
    },
}

/// The lease protocol of one L2 miss (see the module docs): acquire, else
/// wait for the holder's value (unless `stale_ok`), polling with backoff.
/// `live` picks the value out of a lookup when the entry is live (its
/// stamp matches the tokens); `on_wait` runs when the wait begins.
pub(crate) async fn acquire_or_wait<V, F>(
    l2: &Arc<L2>,
    keys: LeaseKeys<'_>,
    ttl: Duration,
    stale_ok: bool,
    mut live: F,
    on_wait: impl FnOnce(),
) -> Outcome<V>
where
    F: FnMut(&Found) -> Option<V>,
{
    let deadline = Instant::now() + ttl * 2;
    let mut pause = FIRST_POLL;
    let mut waited = false;
    let mut on_wait = Some(on_wait);
    loop {
        let (found, held) = match acquire(l2, keys, ttl).await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Alone {
                    found: None,
                    waited,
                    error: Some(e),
                };
            }
        };
        if let Some(value) = live(&found) {
            if let Some(h) = held {
                h.release().await;
            }
            return Outcome::Value(value);
        }
        if let Some(held) = held {
            return Outcome::Hold {
                held,
                found,
                waited,
            };
        }
        if stale_ok {
            return Outcome::Busy;
        }
        if Instant::now() >= deadline {
            return Outcome::Alone {
                found: Some(found),
                waited: true,
                error: None,
            };
        }
        waited = true;
        if let Some(f) = on_wait.take() {
            f();
        }
        sleep_jittered(pause).await;
        pause = (pause * 2).min(MAX_POLL);
    }
}

fn sleep_jittered(d: Duration) -> impl Future<Output = ()> {
    // 75 %..125 % of `d`, so waiters of several processes do not poll in step.
    tokio::time::sleep(d.mul_f64(0.75 + fastrand::f64() / 2.0))
}

/// The error a leased read answers when another instance holds the lease
/// and the caller serves its stale value instead (never reaches users).
pub(crate) fn busy() -> Error {
    Error::unavailable("another instance is loading this key (cache lease)").with_source(Busy)
}

/// Whether `e` is (or wraps) [`busy`].
pub(crate) fn is_busy(e: &Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if x.is::<Busy>() {
            return true;
        }
        cur = x.source();
    }
    false
}

#[derive(Debug)]
struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cache lease held elsewhere")
    }
}

impl std::error::Error for Busy {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_survives_sharing() {
        let shared = Arc::new(busy());
        let _keep = shared.clone();
        let e = crate::singleflight::unshare(shared);
        assert!(is_busy(&e));
        assert!(!is_busy(&Error::unavailable("down")));
    }
}
