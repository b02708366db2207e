//! [`Flaky`]: a repository whose point and query reads (`get`, `get_many`,
//! `find`, `find_one`, `count`, `exists`) can be made to fail (with an error
//! of the test's choice) or to be slow, to drive the cache's fail-safe and
//! load timeouts. Writes always go through. A [`Layered`] hook, so every
//! other method is forwarded by the one decorator that cannot forget one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use persistence_core::layer::{Around, BoxFuture, Call, Layered, Op};
use persistence_core::{Error, Result};

/// What reads do now.
#[derive(Default)]
pub struct Switch {
    fail: Mutex<Option<fn() -> Error>>,
    delay: Mutex<Option<Duration>>,
    /// Reads that reached the wrapper.
    pub reads: AtomicU64,
    /// Reads that returned (after any delay).
    pub finished: AtomicU64,
}

impl Switch {
    /// Reads fail with `make()` (None: they succeed).
    pub fn fail_with(&self, make: Option<fn() -> Error>) {
        *self.fail.lock() = make;
    }
    /// Reads wait this long first (None: no wait).
    pub fn delay(&self, d: Option<Duration>) {
        *self.delay.lock() = d;
    }
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }
}

/// The hook that applies the [`Switch`] to reads.
pub struct FlakyReads(Arc<Switch>);

impl Around for FlakyReads {
    fn around<'a, T: Send + 'a>(
        &'a self,
        _entity: &'static str,
        op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            if !matches!(
                op,
                Op::Get | Op::GetMany | Op::Find | Op::FindOne | Op::Count | Op::Exists
            ) {
                return call().await;
            }
            let switch = &self.0;
            switch.reads.fetch_add(1, Ordering::SeqCst);
            let delay = *switch.delay.lock();
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let fail = *switch.fail.lock();
            let out = match fail {
                Some(make) => Err(make()),
                None => call().await,
            };
            switch.finished.fetch_add(1, Ordering::SeqCst);
            out
        })
    }
}

/// `inner` with reads driven by a [`Switch`].
pub type Flaky<R> = Layered<R, FlakyReads>;

/// Wrap `inner`; the switch starts with reads succeeding at once.
pub fn flaky<R>(inner: R) -> (Flaky<R>, Arc<Switch>) {
    let switch = Arc::new(Switch::default());
    (Layered::new(inner, FlakyReads(switch.clone())), switch)
}
