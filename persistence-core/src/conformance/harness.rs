//! The test harness behind [`conformance_tests!`](crate::conformance_tests).
//!
//! Conformance test files run without libtest (`harness = false`): this module
//! turns every case of [`cases::all`] into a `libtest_mimic` trial, so each
//! case is still its own test for `cargo test` and nextest (`--list`,
//! `--exact`, `--ignored` work as with `#[test]`). A case that needs a
//! capability the backend declares false is registered *ignored* with the
//! reason, so it shows as skipped, not passed. Every repository a case gets
//! is checked against the declared capabilities, so the declaration cannot
//! drift from what the backend reports.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::Arc;

use futures_util::FutureExt as _;
use libtest_mimic::{Arguments, Completion};

pub use libtest_mimic::Trial;

use crate::conformance::cases::{self, Case, capability};
use crate::conformance::services::{self, Service};
use crate::conformance::{Backend, CaseFuture};
use crate::entity::Entity;
use crate::repository::{Capabilities, Repository};

/// Expand to the `main` of a conformance test file (`harness = false`): one
/// test per case, named `conformance::<case>`, each building its backend with
/// `$make().await`.
///
/// With `service = Service::X`, each test first locates the server through
/// [`services::url`] and calls `$make(url).await`: a missing server fails
/// the test under `CI=true` / `PERSISTENCE_REQUIRE_SERVICES=1` and is
/// reported `SKIPPED` (on stderr; the test passes) otherwise.
///
/// To run the suite more than once in one binary (say, per cache level),
/// call [`trials`] / [`service_trials`] with a name prefix for each and
/// [`main`] on all of them.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        fn main() -> ::std::process::ExitCode {
            $crate::conformance::harness::main($crate::conformance::harness::trials("", $make))
        }
    };
    ($make:expr, service = $service:expr) => {
        fn main() -> ::std::process::ExitCode {
            $crate::conformance::harness::main($crate::conformance::harness::service_trials(
                "", $service, $make,
            ))
        }
    };
}

/// Run `trials` as the test binary's command line asks (libtest's flags).
pub fn main(trials: Vec<Trial>) -> ExitCode {
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

/// One trial per case, named `{prefix}conformance::{case}`, each on a fresh
/// backend from `make()`.
pub fn trials<B, Fut>(prefix: &str, make: impl Fn() -> Fut + Send + Sync + 'static) -> Vec<Trial>
where
    B: Backend,
    Fut: Future<Output = B>,
{
    suite::<B>(prefix, move |case| {
        run(|| make().map(Checked), case.run);
        Completion::Completed
    })
}

/// Like [`trials`] for a backend on a server: each trial locates `service`
/// first (see [`services::url`]) and builds its backend with `make(url)`.
pub fn service_trials<B, Fut>(
    prefix: &str,
    service: Service,
    make: impl Fn(String) -> Fut + Send + Sync + 'static,
) -> Vec<Trial>
where
    B: Backend,
    Fut: Future<Output = B>,
{
    suite::<B>(prefix, move |case| {
        let Some(url) = services::url(service) else {
            return Completion::ignored_with(format!("{service:?} is not reachable"));
        };
        run(|| make(url).map(Checked), case.run);
        Completion::Completed
    })
}

/// The trials of every case; `start` runs an applicable one.
fn suite<B: Backend>(
    prefix: &str,
    start: impl Fn(Case<Checked<B>>) -> Completion + Send + Sync + 'static,
) -> Vec<Trial> {
    let declared = B::capabilities();
    let start = Arc::new(start);
    cases::all::<Checked<B>>()
        .into_iter()
        .map(|case| {
            let name = format!("{prefix}conformance::{}", case.name);
            let missing = case.missing(&declared);
            if missing.is_empty() {
                let start = Arc::clone(&start);
                Trial::ignorable_test(name, move || Ok(start(case)))
            } else {
                let reason = format!(
                    "needs {} which {} lacks",
                    missing.join(", "),
                    declared.backend
                );
                Trial::ignorable_test(name, move || Ok(Completion::ignored_with(reason)))
                    .with_ignored_flag(true)
            }
        })
        .collect()
}

/// Run one case: build the backend, run the case, always clean up, then
/// re-raise a panic from the case.
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

/// A backend whose every repository is checked against
/// [`Backend::capabilities`] before a case sees it.
struct Checked<B>(B);

impl<B: Backend> Backend for Checked<B> {
    type Repo<E: Entity> = B::Repo<E>;

    fn capabilities() -> Capabilities {
        B::capabilities()
    }

    async fn repo<E: Entity>(&self) -> B::Repo<E> {
        let repo = self.0.repo::<E>().await;
        let (declared, actual) = (B::capabilities(), repo.capabilities());
        for flag in cases::NEEDED {
            let (d, a) = (capability(&declared, flag), capability(&actual, flag));
            assert_eq!(
                d, a,
                "the backend declares {flag} = {d:?} in Backend::capabilities() but its \
                 {} repository reports {a:?}: fix the declaration",
                actual.backend
            );
        }
        repo
    }

    async fn cleanup(&self) {
        self.0.cleanup().await;
    }
}
