//! The backend conformance suite (feature `conformance`).
//!
//! One suite, run by every backend and every layer. A backend implements
//! [`Backend`] (a factory of fresh, empty, isolated repositories for any
//! entity type) and invokes the macro once in a test file:
//!
//! ```text
//! struct MyBackend { /* pool, schema name, ... */ }
//! impl persistence_core::conformance::Backend for MyBackend {
//!     type Repo<E: persistence_core::Entity> = MyRepository<E>;
//!     async fn repo<E: persistence_core::Entity>(&self) -> MyRepository<E> { /* ensure_schema */ }
//!     async fn cleanup(&self) { /* drop the schema / database */ }
//! }
//! async fn make() -> MyBackend { /* connect, create an isolated schema */ }
//! persistence_core::conformance_tests!(make);
//! ```
//!
//! Every case becomes its own `#[test]` (`conformance::crud_roundtrip_all_types`, ...),
//! runs on a fresh backend from `make()` on a multi-threaded runtime, and
//! calls [`Backend::cleanup`] afterwards, also when the case panics.
//! Cases skip only on a declared [`crate::Capabilities`] flag, never because a
//! server is missing: use [`services`] to locate servers, which fails the test
//! under `CI=true` or `PERSISTENCE_REQUIRE_SERVICES=1`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures_util::FutureExt as _;

use crate::entity::Entity;
use crate::repository::Repository;

pub mod cases;
pub mod entities;
pub mod faults;
pub mod services;

/// A boxed future borrowing the backend.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A factory of fresh repositories, isolated from every other test.
pub trait Backend: Send + Sync + 'static {
    /// The repository type for entity `E`.
    type Repo<E: Entity>: Repository<E> + 'static;

    /// A fresh, empty repository for `E` with its schema ensured. Called at
    /// most once per entity type per backend instance; panics with a clear
    /// message when the backend cannot provide it.
    fn repo<E: Entity>(&self) -> impl Future<Output = Self::Repo<E>> + Send;

    /// Remove everything this backend instance created (schema, database, keys).
    fn cleanup(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Run one case: build the backend, run the case, always clean up, then
/// re-raise a panic from the case. Used by [`conformance_tests!`](crate::conformance_tests).
pub fn run<B, Fut>(make: impl FnOnce() -> Fut, case: impl for<'a> FnOnce(&'a B) -> CaseFuture<'a>)
where
    B: Backend,
    Fut: Future<Output = B>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build a tokio runtime: {e}"),
    };
    rt.block_on(async move {
        let backend = make().await;
        let outcome = AssertUnwindSafe(case(&backend)).catch_unwind().await;
        backend.cleanup().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}

/// Expand to one `#[test]` per conformance case, inside a module named
/// `conformance`, each building its backend with `$make().await`.
///
/// With `service = Service::X`, each test first locates the server through
/// [`services::url`] and calls `$make(url).await`: a missing server fails
/// the test under `CI=true` / `PERSISTENCE_REQUIRE_SERVICES=1` and is
/// reported `SKIPPED` otherwise.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::__conformance_cases!($crate::__conformance_test_fns; $make);
    };
    ($make:expr, service = $service:expr) => {
        $crate::__conformance_cases!($crate::__conformance_service_test_fns; $make, $service);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_service_test_fns {
    ($make:expr, $service:expr; $($case:ident),* $(,)?) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    let ::std::option::Option::Some(url) = $crate::conformance::services::url($service) else {
                        return;
                    };
                    $crate::conformance::run(
                        move || ($make)(url),
                        |b| ::std::boxed::Box::pin($crate::conformance::cases::$case(b)),
                    );
                }
            )*
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fns {
    ($make:expr; $($case:ident),* $(,)?) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    $crate::conformance::run(
                        || ($make)(),
                        |b| ::std::boxed::Box::pin($crate::conformance::cases::$case(b)),
                    );
                }
            )*
        }
    };
}
