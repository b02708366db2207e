//! In-process single flight: concurrent misses of one key share one load.
//!
//! Own implementation (a map of [`Shared`] futures) rather than moka's
//! `try_get_with`, because it must also work without L1 (L2-only mode) and
//! because inserts must be gated by the generation check (stale-set
//! protection), which moka's initializer would do on its own behalf. The
//! flight key carries the local generation, so a read that starts after a
//! write never joins a load that started before it.
//!
//! A read first looks at L2 on its own (most reads hit, and a hit needs no
//! flight) while no flight of its entity type runs ([`Flights::idle`]); a
//! miss then starts or joins the flight, which trusts that first look only
//! if no flight has ended since ([`Flights::ended`]): one that ended may
//! have stored the value in L2 after it.
//!
//! # Readers that join a flight late
//! A flight's value is only as new as the moment its load read it. A
//! reader that joins after that moment may have started after another
//! instance's write was acknowledged — and without L1 (so without a
//! backplane) nothing moved the flight key for it. So every flight says
//! from which tick of the group's clock ([`Flights::tick`]) its value is
//! known to be current ([`Checked::since`]): the tick taken before the
//! step that read it, or before its generation-checked L2 store when Redis
//! accepted that store (no write was acknowledged in between). A joiner
//! takes a tick when it joins; if that tick is not before the flight's,
//! it gets [`Joined::Superseded`] and must check the value (see
//! `crate::repository::stale`). The leader's own reads all happen after
//! it started, so its value is always current.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use persistence_core::{Error, Result};

type Flight<T> = Shared<BoxFuture<'static, std::result::Result<Checked<T>, Arc<Error>>>>;

/// A flight's value and the tick of [`Flights::tick`] before the step that
/// found it current (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct Checked<T> {
    pub value: T,
    /// `u64::MAX`: current for every waiter.
    pub since: u64,
    /// The L2 gen token under which the value was found current (None:
    /// unknown): while Redis still holds it, no write has happened since.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub token: Option<u64>,
}

/// What a waiter gets from [`Flights::run`].
#[derive(Debug)]
pub(crate) enum Joined<T> {
    /// Current for this waiter (it started the flight, or joined it before
    /// the value was read or confirmed).
    Current(T),
    /// The value may be older than a write acknowledged before this waiter
    /// joined: check it (its token) or read again.
    Superseded(Checked<T>),
}

/// A group of in-flight loads keyed by string.
pub(crate) struct Flights<T: Clone + Send + Sync + 'static> {
    map: Mutex<HashMap<String, Flight<T>>>,
    /// The map's length (written under its lock; read without it).
    running: AtomicUsize,
    /// Flights removed from the map so far (done or abandoned).
    ended: AtomicU64,
    /// The clock of [`Checked::since`] and of joining.
    clock: AtomicU64,
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    pub(crate) fn new() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
            running: AtomicUsize::new(0),
            ended: AtomicU64::new(0),
            clock: AtomicU64::new(0),
        }
    }

    /// The next tick of the group's clock: take one before a step that
    /// reads or confirms a flight's value (see the module docs).
    pub(crate) fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// True when no flight runs (a read may look at L2 on its own first).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn idle(&self) -> bool {
        self.running.load(Ordering::SeqCst) == 0
    }

    /// How many flights have ended so far: a flight that finds this
    /// unchanged since a read's own L2 lookup knows that no load of its
    /// key stored a value in L2 after that lookup (the flight of a key is
    /// removed only once its load, and its L2 store, are done).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn ended(&self) -> u64 {
        self.ended.load(Ordering::SeqCst)
    }

    /// Join the flight for `key`, or start it with `make()`.
    pub(crate) async fn run<F, Fut>(&self, key: String, make: F) -> Result<Joined<T>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Checked<T>>> + Send + 'static,
    {
        // The tick at which this waiter joined (None: it leads the flight).
        let (flight, joined) = {
            let mut map = self.map.lock();
            match map.get(&key) {
                // Taken under the lock: the flight's own ticks come later
                // than any tick of a waiter that found it here first.
                Some(f) => (f.clone(), Some(self.tick())),
                None => {
                    let f = make().map(|r| r.map_err(Arc::new)).boxed().shared();
                    map.insert(key.clone(), f.clone());
                    self.running.store(map.len(), Ordering::SeqCst);
                    (f, None)
                }
            }
        };
        // Removes the entry when the flight is done, or when the last waiter
        // gives up on it (a cancelled read must not leave a flight behind).
        let mut guard = Leave {
            flights: self,
            key,
            flight,
            done: false,
        };
        let out = (&mut guard.flight).await;
        guard.done = true;
        drop(guard);
        let out = out.map_err(unshare)?;
        Ok(match joined {
            Some(at) if out.since <= at => Joined::Superseded(out),
            _ => Joined::Current(out.value),
        })
    }

    /// Number of loads in flight (for tests and stats).
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }
}

struct Leave<'a, T: Clone + Send + Sync + 'static> {
    flights: &'a Flights<T>,
    key: String,
    flight: Flight<T>,
    done: bool,
}

impl<T: Clone + Send + Sync + 'static> Drop for Leave<'_, T> {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock();
        let Some(current) = map.get(&self.key) else {
            return;
        };
        let remove = if self.done {
            // A completed handle no longer points at the shared state, so
            // compare through the map's handle: remove it if it is finished.
            current.peek().is_some()
        } else {
            // Cancelled: remove the flight if nobody but the map and this
            // waiter holds it (every waiter holds exactly one clone, in its guard).
            current.ptr_eq(&self.flight) && self.flight.strong_count().is_some_and(|n| n <= 2)
        };
        if remove {
            map.remove(&self.key);
            // Counted before the lock is released: a read that then finds
            // no flight of its key sees the count moved.
            self.flights.ended.fetch_add(1, Ordering::SeqCst);
            self.flights.running.store(map.len(), Ordering::SeqCst);
        }
    }
}

/// Turn a shared error back into an owned one, keeping kind, message,
/// context, retryability and write outcome (the shared original becomes the source).
pub(crate) fn unshare(e: Arc<Error>) -> Error {
    match Arc::try_unwrap(e) {
        Ok(e) => e,
        Err(shared) => {
            let mut out = Error::new(shared.kind().clone(), shared.message().to_owned())
                .set_retryable(shared.is_retryable())
                .with_outcome(shared.outcome());
            if let Some(entity) = shared.entity() {
                out = out.with_entity(entity);
            }
            if let Some(op) = shared.operation() {
                out = out.with_operation(op);
            }
            out.with_source(shared)
        }
    }
}
