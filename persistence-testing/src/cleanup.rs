//! Synchronous cleanup that works inside and outside a tokio runtime.
//!
//! `Drop` cannot await. Each resource's cleanup therefore runs on a
//! dedicated thread with its own current-thread runtime and fresh
//! connections (never the test's pools, whose runtime may be gone or
//! blocked by this very drop). The dropping thread waits for it, bounded by
//! [`CLEANUP_TIMEOUT`]; on a multi-threaded tokio worker the wait goes
//! through `block_in_place` so the other tasks keep running.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::time::Duration;

use persistence_core::Result;

/// The longest a drop waits for a cleanup before giving up (and saying so
/// on stderr; the resource is then left behind).
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A cleanup to run on the dedicated runtime.
pub(crate) type CleanupFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Run `make()` to completion on a fresh runtime in a dedicated thread and
/// wait for it (at most [`CLEANUP_TIMEOUT`]). Never panics: failures are
/// printed to stderr with `what`.
pub(crate) fn run_blocking(what: String, make: impl FnOnce() -> CleanupFuture + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("persistence-testing-cleanup".into())
        .spawn(move || {
            let outcome = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(async move {
                    match tokio::time::timeout(CLEANUP_TIMEOUT, make()).await {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(_) => Err(format!("timed out after {CLEANUP_TIMEOUT:?}")),
                    }
                }),
                Err(e) => Err(format!("cannot build a cleanup runtime: {e}")),
            };
            // The receiver may have given up already; nothing to do then.
            let _ = tx.send(outcome);
        });
    if let Err(e) = spawned {
        eprintln!("persistence-testing: cannot start the cleanup of {what}: {e}; left behind");
        return;
    }
    let wait = move || rx.recv_timeout(CLEANUP_TIMEOUT + Duration::from_secs(5));
    let on_multi_thread_worker = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let outcome = if on_multi_thread_worker {
        tokio::task::block_in_place(wait)
    } else {
        wait()
    };
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("persistence-testing: cleanup of {what} failed: {e}"),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            eprintln!("persistence-testing: cleanup of {what} did not finish in time; left behind")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            eprintln!("persistence-testing: cleanup of {what} panicked; left behind")
        }
    }
}
