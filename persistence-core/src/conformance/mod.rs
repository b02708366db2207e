//! The backend conformance suite (feature `conformance`).
//!
//! One suite, run by every backend and every layer. A backend implements
//! [`Backend`] (a factory of fresh, empty, isolated repositories for any
//! entity type, and the capabilities they have) and invokes the macro once in
//! a test file whose `[[test]]` entry says `harness = false`:
//!
//! ```text
//! struct MyBackend { /* pool, schema name, ... */ }
//! impl persistence_core::conformance::Backend for MyBackend {
//!     type Repo<E: persistence_core::Entity> = MyRepository<E>;
//!     fn capabilities() -> persistence_core::Capabilities { /* what MyRepository reports */ }
//!     async fn repo<E: persistence_core::Entity>(&self) -> MyRepository<E> { /* ensure_schema */ }
//!     async fn cleanup(&self) { /* drop the schema / database */ }
//! }
//! async fn make() -> MyBackend { /* connect, create an isolated schema */ }
//! persistence_core::conformance_tests!(make); // defines `fn main`
//! ```
//!
//! Every case becomes its own test (`conformance::roundtrip_all_types`, ...)
//! through the [`harness`] (libtest-mimic, so `cargo test` and nextest list
//! and filter them as usual), runs on a fresh backend from `make()` on a
//! multi-threaded runtime, and calls [`Backend::cleanup`] afterwards, also
//! when the case panics. The cases live in [`cases`], one file per topic.
//! A case is skipped only when it needs a [`crate::Capabilities`] flag the
//! backend declares false, and then it is reported as ignored (nextest:
//! SKIPPED), never as passed. A missing server is not a skip under CI: use
//! [`services`] to locate servers, which fails the test under `CI=true` or
//! `PERSISTENCE_REQUIRE_SERVICES=1`.

use std::future::Future;
use std::pin::Pin;

use crate::entity::Entity;
use crate::repository::{Capabilities, Repository};

pub mod cases;
pub mod corpus;
pub mod entities;
pub mod faults;
pub mod harness;
pub mod services;

pub use harness::run;

/// A boxed future borrowing the backend.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A factory of fresh repositories, isolated from every other test.
pub trait Backend: Send + Sync + 'static {
    /// The repository type for entity `E`.
    type Repo<E: Entity>: Repository<E> + 'static;

    /// What this backend's repositories can do, declared without a server:
    /// the harness skips the cases needing a flag this lacks (before `make`
    /// runs), and checks every repository's [`Repository::capabilities`]
    /// against it for each flag some case needs.
    fn capabilities() -> Capabilities;

    /// A fresh, empty repository for `E` with its schema ensured. Called at
    /// most once per entity type per backend instance; panics with a clear
    /// message when the backend cannot provide it.
    fn repo<E: Entity>(&self) -> impl Future<Output = Self::Repo<E>> + Send;

    /// Remove everything this backend instance created (schema, database, keys).
    fn cleanup(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
