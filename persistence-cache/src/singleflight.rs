//! In-process single flight: concurrent misses of one key share one load.
//!
//! Own implementation (a map of [`Shared`] futures) rather than moka's
//! `try_get_with`, because it must also work without L1 (L2-only mode) and
//! because inserts must be gated by the generation check (stale-set
//! protection), which moka's initializer would do on its own behalf. The
//! flight key carries the local generation, so a read that starts after a
//! write never joins a load that started before it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use persistence_core::{Error, Result};

type Flight<T> = Shared<BoxFuture<'static, std::result::Result<T, Arc<Error>>>>;

/// A group of in-flight loads keyed by string.
pub(crate) struct Flights<T: Clone + Send + Sync + 'static> {
    map: Mutex<HashMap<String, Flight<T>>>,
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    pub(crate) fn new() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Join the flight for `key`, or start it with `make()`.
    pub(crate) async fn run<F, Fut>(&self, key: String, make: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let flight = {
            let mut map = self.map.lock();
            match map.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let f = make().map(|r| r.map_err(Arc::new)).boxed().shared();
                    map.insert(key.clone(), f.clone());
                    f
                }
            }
        };
        // Removes the entry when the flight is done, or when the last waiter
        // gives up on it (a cancelled read must not leave a flight behind).
        let mut guard = Leave {
            map: &self.map,
            key,
            flight,
            done: false,
        };
        let out = (&mut guard.flight).await;
        guard.done = true;
        drop(guard);
        out.map_err(unshare)
    }

    /// Number of loads in flight (for tests and stats).
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }
}

struct Leave<'a, T: Clone + Send + Sync + 'static> {
    map: &'a Mutex<HashMap<String, Flight<T>>>,
    key: String,
    flight: Flight<T>,
    done: bool,
}

impl<T: Clone + Send + Sync + 'static> Drop for Leave<'_, T> {
    fn drop(&mut self) {
        let mut map = self.map.lock();
        let Some(current) = map.get(&self.key) else {
            return;
        };
        if self.done {
            // A completed handle no longer points at the shared state, so
            // compare through the map's handle: remove it if it is finished.
            if current.peek().is_some() {
                map.remove(&self.key);
            }
            return;
        }
        // Cancelled: remove the flight if nobody but the map and this waiter
        // holds it (every waiter holds exactly one clone, in its guard).
        if current.ptr_eq(&self.flight) && self.flight.strong_count().is_some_and(|n| n <= 2) {
            map.remove(&self.key);
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
