//! Stale values: the source fail-safe, soft and hard load timeouts and
//! eager refresh (see [`crate::ReadPolicy`]).
//!
//! * A load that fails with a retryable error (`Unavailable`, `Timeout`,
//!   which an open circuit breaker also answers) is answered with the L1
//!   entry kept past its TTL, if it is younger than the fail-safe's max age;
//!   the entry is then kept fresh (flagged stale) for the throttle, so the
//!   key is not reloaded meanwhile. Other errors are never masked.
//! * With a soft or hard timeout the load runs in its own task: the reader
//!   stops waiting at the soft timeout (stale value) or the hard timeout
//!   (the stale value if any, else a `Timeout` error) and the load finishes
//!   in the background, filling the cache.
//! * With L2, stale copies are served only while the backplane is
//!   connected (`Shared::stale_coherent`): without it, other instances'
//!   writes never reach this L1.
//! * A fresh hit past the eager-refresh fraction of its TTL starts one
//!   background reload (one per entry, joined with any other load of the
//!   key through the single flight).
//!
//! * With a lease (`crate::lease`), a miss that finds another instance
//!   loading the key serves its stale value at once instead of waiting.
//!
//! Stale entries live under the same generation key as fresh ones, so a
//! write or invalidation (local, backplane) makes them unreachable at once.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use persistence_core::{Entity, Error, ErrorKind, Repository, Result};

use crate::codec::Cached;
use crate::metrics::Event;
use crate::repository::entries::{Kind, L1Entry, unexpected};
use crate::repository::read::{FillOpts, Probe};
use crate::repository::{CachedRepository, Inner, Served};
use crate::singleflight::Joined;

/// Whether the fail-safe may answer `e` with a stale value.
fn masked(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout) && e.is_retryable()
}

impl<E: Entity, R: Repository<E> + 'static> CachedRepository<E, R> {
    /// The miss path of a read: the shared load, bounded by the soft / hard
    /// timeout when set, falling back on `stale` (an expired L1 entry the
    /// fail-safe may serve) when the load fails with a retryable error or
    /// outlives the soft timeout.
    pub(super) async fn load_or_stale<F, Fut>(
        &self,
        key: String,
        local: String,
        kind: Kind,
        stale: Option<L1Entry<E>>,
        probe: Option<Probe>,
        load: F,
    ) -> Result<(Cached<E>, Served)>
    where
        F: FnOnce(Arc<Inner<E, R>>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Cached<E>>> + Send + 'static,
    {
        let inner = &self.inner;
        let policy = self.read_policy();
        let (ttl, keep) = (self.ttls(), policy.keep());
        let bound = match (&stale, policy.soft_timeout, policy.hard_timeout) {
            (Some(_), Some(soft), _) => Some(soft),
            (_, _, hard) => hard,
        };
        let lease = policy.lease_ttl();
        // With a stale value to serve, a leased miss does not wait for
        // another instance's load; such readers share their own flight, so
        // a reader without one never gets the "busy" answer meant for them.
        let stale_ok = lease.is_some() && stale.is_some();
        let opts = FillOpts {
            ttl,
            keep,
            refresh: false,
            lease,
            stale_ok,
            probe,
        };
        let me = inner.clone();
        let (k, l) = (key.clone(), local.clone());
        let shared = async move { me.shared_load(k, l, kind, opts, load).await };
        // Still the newest value? A write during the load moved the generation.
        let current = |s: &Option<L1Entry<E>>| s.is_some() && inner.local_key(&key, kind) == local;
        let runtime = tokio::runtime::Handle::try_current().ok();
        let out = match (bound, runtime) {
            (Some(bound), Some(rt)) => {
                // Its own task, so that the load outlives a reader that stops waiting.
                // The load keeps the caller's tenant context (row-level tenancy).
                let mut task = rt.spawn(persistence_core::tenant::propagate(shared));
                let started = Instant::now();
                let joined = match tokio::time::timeout(bound, &mut task).await {
                    Ok(joined) => Some(joined),
                    Err(_) if current(&stale) => {
                        // (Without a soft timeout, the hard one: stale beats an error.)
                        inner.record(if policy.soft_timeout.is_some() {
                            Event::SoftTimeout
                        } else {
                            Event::HardTimeout
                        });
                        inner.record(Event::StaleServed);
                        return Ok((
                            stale.map(|s| s.value).ok_or_else(unexpected)?,
                            Served::Stale,
                        ));
                    }
                    // The soft timeout passed but the stale value is dead: wait up to the hard one.
                    Err(_) => match policy.hard_timeout {
                        Some(hard) if hard > started.elapsed() => {
                            tokio::time::timeout(hard - started.elapsed(), &mut task)
                                .await
                                .ok()
                        }
                        Some(_) => None,
                        None => Some(task.await),
                    },
                };
                match joined {
                    Some(Ok(out)) => out,
                    Some(Err(e)) => Err(Error::backend(format!("cache load task failed: {e}"))),
                    None => {
                        inner.record(Event::HardTimeout);
                        return Err(Error::timeout(format!(
                            "loading {} into the cache exceeded hard_timeout; it goes on in the background",
                            E::meta().name
                        )));
                    }
                }
            }
            _ => shared.await,
        };
        match out {
            Ok(v) => Ok((v, Served::Fresh)),
            // Another instance holds the lease: the stale value answers at
            // once (no throttle: its value is in L2 soon). It was current
            // when the lease step ran, and this read overlaps any write
            // that moved the generation since.
            #[cfg(feature = "redis")]
            Err(e) if crate::lease::is_busy(&e) => match stale {
                Some(s) => {
                    inner.record(Event::StaleServed);
                    Ok((s.value, Served::Stale))
                }
                None => Err(e),
            },
            Err(e) if masked(&e) && current(&stale) => {
                let Some(s) = stale else { return Err(e) };
                let throttle = policy.fail_safe.map_or(Duration::ZERO, |f| f.throttle);
                tracing::debug!(entity = E::meta().name, error = %e, "load failed; the fail-safe serves the stale value");
                let value = s.value.clone();
                inner.keep_stale(&key, kind, local, s, throttle).await;
                inner.record(Event::StaleServed);
                Ok((value, Served::Stale))
            }
            Err(e) => Err(e),
        }
    }

    /// Start one background reload of `key` (eager refresh).
    pub(super) fn refresh<F, Fut>(&self, key: String, local: String, kind: Kind, load: F)
    where
        F: FnOnce(Arc<Inner<E, R>>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Cached<E>>> + Send + 'static,
    {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = self.inner.clone();
        let policy = self.read_policy();
        // The entry is still fresh: with a lease, skip the reload when
        // another instance is already loading (its value reaches L2).
        let opts = FillOpts {
            ttl: self.ttls(),
            keep: policy.keep(),
            refresh: true,
            lease: policy.lease_ttl(),
            stale_ok: true,
            probe: None,
        };
        inner.record(Event::EagerRefresh);
        rt.spawn(persistence_core::tenant::propagate(async move {
            let me = inner.clone();
            let flight_key = local.clone();
            let make = move || async move { me.fill(key, local, kind, opts, load).await }.boxed();
            // Joined a superseded flight: nobody waits for this refresh,
            // and the next read after that write loads anew.
            if let Err(e) = inner.flights.run(flight_key, make).await {
                tracing::debug!(entity = E::meta().name, error = %e, "eager cache refresh failed");
            }
        }));
    }
}

/// How many times a reader whose flight a write superseded reads again
/// through a flight before it loads on its own (see [`Inner::shared_load`]).
const REREADS: usize = 2;

impl<E: Entity, R: Repository<E> + 'static> Inner<E, R> {
    /// Lead or join the single flight of `local` (`fill`). A reader that
    /// joined a flight whose value a write may have superseded before it
    /// joined ([`Joined::Superseded`]; see [`crate::singleflight`]) takes
    /// it if Redis still holds the gen token under which the flight found
    /// it (no write since: one round trip); else it reads again, through a
    /// new flight under the generation now current, at most [`REREADS`]
    /// times; then it loads on its own, storing nothing, so that a stream
    /// of writes cannot keep it waiting.
    pub(super) async fn shared_load<F, Fut>(
        self: Arc<Self>,
        key: String,
        mut local: String,
        kind: Kind,
        mut opts: FillOpts,
        load: F,
    ) -> Result<Cached<E>>
    where
        F: FnOnce(Arc<Inner<E, R>>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Cached<E>>> + Send + 'static,
    {
        for attempt in 0..=REREADS {
            if attempt > 0 {
                // The read's own L2 lookup predates the write: look again.
                opts.probe = None;
                local = self.local_key(&key, kind);
            }
            // Readers with a stale value to serve share their own flight
            // (see `load_or_stale`).
            let flight_key = if opts.stale_ok {
                format!("{local}|stale")
            } else {
                local.clone()
            };
            let (me, k, l, ld) = (self.clone(), key.clone(), local.clone(), load.clone());
            let make = move || async move { me.fill(k, l, kind, opts, ld).await }.boxed();
            match self.flights.run(flight_key, make).await? {
                Joined::Current(v) => return Ok(v),
                Joined::Superseded(c) => {
                    #[cfg(feature = "redis")]
                    if let Some(token) = c.token {
                        if self.l2_still(token).await {
                            return Ok(c.value);
                        }
                    }
                    #[cfg(not(feature = "redis"))]
                    let _ = c;
                    self.record(Event::Reread);
                }
            }
        }
        self.record(Event::Load);
        load(self.clone())
            .await
            .inspect_err(|_| self.record(Event::LoadError))
    }

    /// After a failed load: keep `entry` fresh (flagged stale) for the
    /// throttle, within its fail-safe life, unless a write has moved the
    /// generation since.
    async fn keep_stale(
        &self,
        key: &str,
        kind: Kind,
        local: String,
        mut entry: L1Entry<E>,
        throttle: Duration,
    ) {
        let (Some(l1), Some(keep_until)) = (&self.l1, entry.keep_until) else {
            return;
        };
        let now = Instant::now();
        if self.local_key(key, kind) != local || now >= keep_until {
            return;
        }
        entry.ttl = keep_until - now;
        entry.fresh_until = (now + throttle).min(keep_until);
        entry.stale = true;
        l1.insert(local, entry).await;
    }
}
